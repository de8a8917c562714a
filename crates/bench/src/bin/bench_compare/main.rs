//! `bench-compare`: etcd 3.4 and ironcd side by side, in one run on this
//! machine, written into a section of BENCHMARKS.md.
//!
//! For each workload row it starts a fresh cluster of one implementation
//! (one member, then three on loopback), runs `ironcd-bench --json` against
//! it, stops it, and does the same for the other implementation; which goes
//! first alternates from row to row, so drift of the machine affects both.
//! Then one member of each is filled with N keys for peak RSS, data size
//! and the time a restart over that data takes to serve a read. The table
//! (etcd, ironcd, ratio ironcd / etcd, the issue's target) replaces the part
//! of `--out` between `<!-- bench-compare:begin -->` and
//! `<!-- bench-compare:end -->`; the rest of the file is left as it is.
//!
//! ```sh
//! make bench-compare                      # 10 s rows, 1 M keys
//! bench-compare --quick --out /tmp/x.md   # smoke run: 1 s rows, 2 000 keys
//! ```
//!
//! A row that cannot run is recorded in the table and the run goes on; the
//! exit status is non-zero if any did.

mod cluster;
mod footprint;
mod load;
mod probe;
mod report;
mod section;
mod splice;
mod system;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use ironcd_tests::Impl;

use crate::cluster::Cluster;
use crate::load::RunOutcome;
use crate::probe::Probe;
use crate::report::{Cell, Line};
use crate::section::Section;
use crate::workloads::{Row, Shape};

/// A progress line on stderr. A closed stderr (say, `| head`) must not
/// stop the run before the table is written, so write errors are ignored.
macro_rules! progress {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Seconds per row and keys filled in `--quick` mode.
const QUICK_SECS: u64 = 1;
const QUICK_FILL_KEYS: u64 = 2_000;
/// How long an `ironcd-bench` row may run beyond its duration (connecting,
/// creating watchers, draining) before it is killed.
const ROW_TIMEOUT_SLACK: Duration = Duration::from_secs(120);

/// Command-line options.
#[derive(Parser, Debug)]
#[command(
    name = "bench-compare",
    version,
    // The last of a repeated option wins, so `make bench-compare
    // ARGS='--out x.md'` overrides the Makefile's `--out BENCHMARKS.md`.
    args_override_self = true,
    about = "Runs the same workloads against etcd 3.4 and ironcd and writes the comparison \
             into a section of a markdown file."
)]
struct Args {
    /// The markdown file whose bench-compare section is rewritten.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Seconds each workload row runs, per implementation.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    secs: u64,
    /// Keys written before measuring memory, data size and restart time.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    fill_keys: u64,
    /// A smoke run: 1-second rows and a fill of 2 000 keys (every row, both
    /// implementations, both shapes). Not a measurement.
    #[arg(long)]
    quick: bool,
}

/// The three binaries compared and driven.
pub struct Binaries {
    /// etcd 3.4.
    pub etcd: PathBuf,
    /// ironcd.
    pub ironcd: PathBuf,
    /// The load generator.
    pub bench: PathBuf,
}

impl Binaries {
    /// Finds each binary: its environment variable, else its default place
    /// (ironcd and ironcd-bench next to this executable, etcd in /usr/bin).
    fn locate() -> Result<Binaries> {
        let own_dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let find = |variable: &str, default: PathBuf, how: &str| -> Result<PathBuf> {
            let path = std::env::var_os(variable).map_or(default, PathBuf::from);
            if !path.is_file() {
                bail!("{} not found: {how} (or set {variable})", path.display());
            }
            Ok(path)
        };
        Ok(Binaries {
            etcd: find(
                "ETCD_BIN",
                PathBuf::from("/usr/bin/etcd"),
                "install etcd 3.4 with `apt-get install etcd-server` (`make deps` does)",
            )?,
            ironcd: find(
                "IRONCD_BIN",
                own_dir.join("ironcd"),
                "build it with `cargo build --release -p ironcd-server`",
            )?,
            bench: find(
                "IRONCD_BENCH_BIN",
                own_dir.join("ironcd-bench"),
                "build it with `cargo build --release -p ironcd-bench`",
            )?,
        })
    }

    /// The server binary of `implementation`.
    pub fn server(&self, implementation: Impl) -> &Path {
        match implementation {
            Impl::Etcd => &self.etcd,
            Impl::Ironcd => &self.ironcd,
        }
    }
}

/// What every row needs.
pub struct Context {
    /// Where the binaries are.
    pub binaries: Binaries,
    /// Probes members for serving.
    pub probe: Probe,
}

/// The table's lines, notes, commands, and whether anything failed to run.
#[derive(Default)]
struct Results {
    lines: Vec<Line>,
    notes: Vec<String>,
    commands: Vec<(String, String)>,
    failed_rows: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            progress!(
                "bench-compare: {failed} row(s) could not be measured; see the notes under the table in {}",
                args.out.display()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            progress!("bench-compare: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything and writes the section; returns the number of rows that
/// could not be measured.
fn run(args: &Args) -> Result<usize> {
    let (secs, fill_keys) = if args.quick {
        (QUICK_SECS, QUICK_FILL_KEYS)
    } else {
        (args.secs, args.fill_keys)
    };
    let context = Context {
        binaries: Binaries::locate()?,
        probe: Probe::new()?,
    };
    // A malformed output file fails now, not after the whole run.
    splice::locate(&splice::read_document(&args.out)?)
        .with_context(|| format!("{}", args.out.display()))?;
    let mut section = Section::describe(args.quick, secs, fill_keys, &context.binaries);
    let started = Instant::now();
    let mut results = Results::default();
    let rows = workloads::rows(secs);
    for (index, row) in rows.iter().enumerate() {
        progress!(
            "bench-compare: row {}/{}: {} {}",
            index + 1,
            rows.len() + 1,
            row.shape.label(),
            row.workload
        );
        run_row(&context, row, index, secs, &mut results);
    }
    progress!(
        "bench-compare: row {0}/{0}: 1 node, fill of {fill_keys} keys, restart",
        rows.len() + 1
    );
    run_footprint(&context, fill_keys, &mut results);
    section.finish(
        results.lines,
        results.commands,
        results.notes,
        started.elapsed(),
    );
    let document = splice::read_document(&args.out)?;
    splice::write_atomically(&args.out, &splice::splice(&document, &section.render())?)?;
    progress!(
        "bench-compare: wrote {} in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(results.failed_rows)
}

/// Both implementations on one row (in the row's order), then its lines.
fn run_row(context: &Context, row: &Row, index: usize, secs: u64, results: &mut Results) {
    let order = if index.is_multiple_of(2) {
        [Impl::Etcd, Impl::Ironcd]
    } else {
        [Impl::Ironcd, Impl::Etcd]
    };
    let mut etcd = None;
    let mut ironcd = None;
    for implementation in order {
        let outcome = run_once(context, row, implementation, secs, results);
        progress!(
            "bench-compare:   {}: {}",
            implementation.name(),
            describe_outcome(row, &outcome)
        );
        note_outcome(row, implementation, &outcome, results);
        match implementation {
            Impl::Etcd => etcd = Some(outcome),
            Impl::Ironcd => ironcd = Some(outcome),
        }
    }
    let (Some(etcd), Some(ironcd)) = (etcd, ironcd) else {
        unreachable!("both implementations ran");
    };
    if [&etcd, &ironcd]
        .iter()
        .any(|o| matches!(o, RunOutcome::Failed { .. }))
    {
        results.failed_rows += 1;
    }
    for measure in &row.measures {
        results.lines.push(Line {
            shape: row.shape.label().to_string(),
            workload: row.workload.clone(),
            metric: measure.metric.to_string(),
            etcd: cell(&etcd, measure),
            ironcd: cell(&ironcd, measure),
            target: measure.target,
        });
    }
    results.commands.push((
        format!("{}, {}", row.shape.label(), row.workload),
        row.command.display(),
    ));
}

/// A fresh cluster of `implementation`, one `ironcd-bench` run, a stop.
fn run_once(
    context: &Context,
    row: &Row,
    implementation: Impl,
    secs: u64,
    results: &mut Results,
) -> RunOutcome {
    let binary = context.binaries.server(implementation);
    let mut cluster =
        match Cluster::start(implementation, binary, row.shape.members(), &context.probe) {
            Ok(cluster) => cluster,
            Err(error) => {
                return RunOutcome::Failed {
                    reason: format!("the cluster did not start: {error:#}"),
                }
            }
        };
    let outcome = load::run(
        &context.binaries.bench,
        &row.command,
        &cluster.client_urls(),
        cluster.dir(),
        Duration::from_secs(secs) + ROW_TIMEOUT_SLACK,
    );
    if let Err(error) = cluster.stop() {
        results.notes.push(format!(
            "{}, {}: {error:#}",
            row.shape.label(),
            row.workload
        ));
    }
    outcome
}

/// The table cell of one measure of one outcome.
fn cell(outcome: &RunOutcome, measure: &workloads::Measure) -> Cell {
    match outcome {
        RunOutcome::Completed(report) => Cell::Figure {
            value: measure.quantity.of(report),
            unit: measure.quantity.unit(),
            errors: report.errors,
        },
        RunOutcome::NotServed { .. } => Cell::NotServed,
        RunOutcome::Failed { reason } => Cell::Failed(reason.clone()),
    }
}

/// One progress line's worth on an outcome.
fn describe_outcome(row: &Row, outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Completed(report) => {
            let figures: Vec<String> = row
                .measures
                .iter()
                .map(|m| {
                    let value = report::format_value(m.quantity.of(report), m.quantity.unit());
                    format!("{} {value}", m.metric)
                })
                .collect();
            let errors = match report.errors {
                0 => String::new(),
                n => format!(" ({n} errors)"),
            };
            format!("{}{errors}", figures.join(", "))
        }
        RunOutcome::NotServed { service } => format!("{service} not yet served"),
        RunOutcome::Failed { reason } => format!("FAILED: {reason}"),
    }
}

/// A note under the table for a failed run or a run with errors.
fn note_outcome(row: &Row, implementation: Impl, outcome: &RunOutcome, results: &mut Results) {
    let what = format!(
        "{}, {}, {}",
        row.shape.label(),
        row.workload,
        implementation.name()
    );
    match outcome {
        RunOutcome::Completed(report) if report.errors > 0 => results.notes.push(format!(
            "{what}: {} errors; first: {}",
            report.errors,
            report.first_errors.join("; ")
        )),
        RunOutcome::Failed { reason } => results.notes.push(format!("{what}: {reason}")),
        _ => {}
    }
}

/// The resource rows: etcd, then ironcd.
fn run_footprint(context: &Context, keys: u64, results: &mut Results) {
    let etcd = footprint::measure(context, Impl::Etcd, keys);
    progress!("bench-compare:   etcd: {}", footprint_progress(&etcd));
    let ironcd = footprint::measure(context, Impl::Ironcd, keys);
    progress!("bench-compare:   ironcd: {}", footprint_progress(&ironcd));
    if etcd.failed || ironcd.failed {
        results.failed_rows += 1;
    }
    let workload = format!(
        "fill {} keys ({} B keys, {} B values), restart",
        section::group_thousands(keys),
        workloads::KEY_SIZE_BYTES,
        workloads::VALUE_SIZE_BYTES
    );
    for figure in footprint::Figure::ALL {
        results.lines.push(Line {
            shape: Shape::OneNode.label().to_string(),
            workload: workload.clone(),
            metric: figure.metric().to_string(),
            etcd: etcd.cell(figure),
            ironcd: ironcd.cell(figure),
            target: figure.target(),
        });
    }
    results.notes.extend(etcd.notes);
    results.notes.extend(ironcd.notes);
    results.commands.push((
        format!("1 node, {workload}"),
        footprint::fill_command(keys).display(),
    ));
}

fn footprint_progress(footprint: &footprint::Footprint) -> String {
    footprint
        .cells
        .iter()
        .map(|(figure, cell)| {
            let text = match cell {
                Cell::Figure { value, unit, .. } => report::format_value(*value, *unit),
                Cell::NotServed => "not yet served".to_string(),
                Cell::Failed(reason) => format!("FAILED: {reason}"),
            };
            format!("{} {text}", figure.metric())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
