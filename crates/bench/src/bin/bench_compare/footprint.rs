//! The resource rows: one fresh member filled with N keys, then its peak
//! RSS and data-directory size, then the time from a restart over that data
//! to serving a linearizable read, and its RSS once serving.

use std::time::Duration;

use ironcd_tests::Impl;

use crate::cluster::Cluster;
use crate::load::{self, BenchCommand, RunOutcome};
use crate::report::{Cell, Target, Unit};
use crate::system;
use crate::workloads::{KEY_SIZE_BYTES, VALUE_SIZE_BYTES};
use crate::Context;

/// Clients and connections of the fill.
const FILL_CLIENTS: u32 = 64;
const FILL_CONNS: u32 = 8;
/// The fill's bound: a fixed allowance plus this many keys per second at
/// the least (etcd fills ~15 k keys/s on the project's VM).
const FILL_TIMEOUT_BASE: Duration = Duration::from_secs(120);
const FILL_SLOWEST_KEYS_PER_SEC: u64 = 500;

/// One figure of the resource rows: its metric and target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// Keys written per second by the fill.
    FillRate,
    /// VmHWM of the server after the fill.
    PeakRss,
    /// `du` of the data directory after the fill.
    DataDir,
    /// From spawn over the filled data to serving a linearizable read.
    RestartToServing,
    /// VmRSS of the restarted server once it serves.
    RssAfterRestart,
}

impl Figure {
    /// Every figure, in table order.
    pub const ALL: [Figure; 5] = [
        Figure::FillRate,
        Figure::PeakRss,
        Figure::DataDir,
        Figure::RestartToServing,
        Figure::RssAfterRestart,
    ];

    /// The table's `metric` column.
    pub fn metric(self) -> &'static str {
        match self {
            Figure::FillRate => "fill rate, keys/s",
            Figure::PeakRss => "peak RSS after fill",
            Figure::DataDir => "data directory after fill",
            Figure::RestartToServing => "restart to serving a read",
            Figure::RssAfterRestart => "RSS after restart, serving",
        }
    }

    /// The issue's target on ironcd / etcd, if any.
    pub fn target(self) -> Option<Target> {
        match self {
            Figure::PeakRss => Some(Target::at_most(0.4)),
            Figure::DataDir => Some(Target::at_most(0.5)),
            Figure::RestartToServing => Some(Target::at_most(0.3)),
            Figure::FillRate | Figure::RssAfterRestart => None,
        }
    }
}

/// The fill's `ironcd-bench` command for `keys` keys.
pub fn fill_command(keys: u64) -> BenchCommand {
    let global = [
        ("--total", keys.to_string()),
        ("--clients", FILL_CLIENTS.to_string()),
        ("--conns", FILL_CONNS.to_string()),
        ("--key-size", KEY_SIZE_BYTES.to_string()),
        ("--val-size", VALUE_SIZE_BYTES.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .chain(["--sequential-keys".to_string()])
    .collect();
    BenchCommand {
        global,
        workload: "fill".to_string(),
        workload_args: Vec::new(),
    }
}

/// One implementation's figures, in [`Figure::ALL`] order, and notes on
/// what went wrong.
pub struct Footprint {
    /// One cell per figure.
    pub cells: Vec<(Figure, Cell)>,
    /// Multi-line explanations of failures and errors.
    pub notes: Vec<String>,
    /// Whether some figure could not be measured.
    pub failed: bool,
}

/// Fills a fresh single member of `implementation` and measures it.
pub fn measure(context: &Context, implementation: Impl, keys: u64) -> Footprint {
    let mut footprint = Footprint {
        cells: Vec::new(),
        notes: Vec::new(),
        failed: false,
    };
    let name = implementation.name();
    let mut cluster = match Cluster::start(
        implementation,
        context.binaries.server(implementation),
        1,
        &context.probe,
    ) {
        Ok(cluster) => cluster,
        Err(error) => {
            footprint.fail_all(format!("{name} did not start: {error:#}"));
            return footprint;
        }
    };
    let timeout = FILL_TIMEOUT_BASE + Duration::from_secs(keys / FILL_SLOWEST_KEYS_PER_SEC);
    let fill = load::run(
        &context.binaries.bench,
        &fill_command(keys),
        &cluster.client_urls(),
        cluster.dir(),
        timeout,
    );
    match fill {
        RunOutcome::Completed(report) => {
            footprint.record(
                Figure::FillRate,
                Cell::Figure {
                    value: report.requests_per_sec,
                    unit: Unit::PerSec,
                    errors: report.errors,
                },
            );
            if report.errors > 0 {
                footprint.notes.push(format!(
                    "{name} fill: {} errors, first: {}",
                    report.errors,
                    report.first_errors.join("; ")
                ));
            }
        }
        RunOutcome::NotServed { service } => {
            footprint.fail_all(format!("{name} fill: {service} not served"));
            return footprint;
        }
        RunOutcome::Failed { reason } => {
            footprint.fail_all(format!("{name} fill: {reason}"));
            return footprint;
        }
    }
    footprint.measure_filled(&mut cluster, context, name);
    if let Err(error) = cluster.stop() {
        footprint.notes.push(format!("{error:#}"));
    }
    footprint
}

impl Footprint {
    /// Peak RSS and size after the fill, then the restart and its RSS.
    fn measure_filled(&mut self, cluster: &mut Cluster, context: &Context, name: &str) {
        let rss = |cluster: &Cluster, field| {
            let pid = cluster
                .pid(0)
                .ok_or_else(|| anyhow::anyhow!("not running"))?;
            system::proc_status_bytes(pid, field)
        };
        let peak = rss(cluster, "VmHWM");
        self.record_result(Figure::PeakRss, name, peak, Unit::Bytes);
        let size = system::disk_usage_bytes(cluster.data_dir(0)).map_err(anyhow::Error::from);
        self.record_result(Figure::DataDir, name, size, Unit::Bytes);
        match cluster.restart_timed(0, &context.probe) {
            Ok(elapsed) => {
                self.record(
                    Figure::RestartToServing,
                    Cell::figure(elapsed.as_secs_f64(), Unit::Secs),
                );
                let after = rss(cluster, "VmRSS");
                self.record_result(Figure::RssAfterRestart, name, after, Unit::Bytes);
            }
            Err(error) => {
                let reason = format!("{name} restart: {error:#}");
                self.record_failure(Figure::RestartToServing, &reason);
                self.record_failure(Figure::RssAfterRestart, &reason);
            }
        }
    }

    fn record(&mut self, figure: Figure, cell: Cell) {
        self.cells.push((figure, cell));
    }

    fn record_result(
        &mut self,
        figure: Figure,
        name: &str,
        bytes: anyhow::Result<u64>,
        unit: Unit,
    ) {
        match bytes {
            Ok(bytes) => self.record(figure, Cell::figure(bytes as f64, unit)),
            Err(error) => {
                self.record_failure(figure, &format!("{name} {}: {error:#}", figure.metric()))
            }
        }
    }

    fn record_failure(&mut self, figure: Figure, reason: &str) {
        self.failed = true;
        self.record(figure, Cell::Failed(reason.to_string()));
        if !self.notes.iter().any(|note| note == reason) {
            self.notes.push(reason.to_string());
        }
    }

    /// Marks every figure not yet recorded as failed for `reason`.
    fn fail_all(&mut self, reason: String) {
        for figure in Figure::ALL {
            if !self.cells.iter().any(|(f, _)| *f == figure) {
                self.record_failure(figure, &reason);
            }
        }
    }

    /// The cell of `figure` (failed if it was never recorded).
    pub fn cell(&self, figure: Figure) -> Cell {
        self.cells.iter().find(|(f, _)| *f == figure).map_or_else(
            || Cell::Failed("not measured".to_string()),
            |(_, c)| c.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_command_puts_every_option_before_the_workload() {
        assert_eq!(
            fill_command(1_000_000).display(),
            "ironcd-bench --endpoints <endpoints> --json --total 1000000 --clients 64 \
             --conns 8 --key-size 16 --val-size 256 --sequential-keys fill"
        );
    }

    #[test]
    fn targets_are_the_issue_s() {
        let targets: Vec<Option<Target>> = Figure::ALL.iter().map(|f| f.target()).collect();
        assert_eq!(
            targets,
            [
                None,
                Some(Target::at_most(0.4)),
                Some(Target::at_most(0.5)),
                Some(Target::at_most(0.3)),
                None
            ]
        );
    }
}
