//! The workload list the issue asks for, each row with its load, its
//! `ironcd-bench` command and the targets on its figures.

use crate::load::{BenchCommand, BenchReport};
use crate::report::{Target, Unit};

/// Key size of every workload, in bytes.
pub const KEY_SIZE_BYTES: u64 = 16;
/// Value size of every workload, in bytes.
pub const VALUE_SIZE_BYTES: u64 = 256;
/// Distinct keys the timed workloads draw from.
const KEY_SPACE_SIZE: u64 = 10_000;
/// Throughput targets: ironcd serves at least twice etcd's rate.
const TWICE_THE_RATE: Option<Target> = Some(Target::at_least(2.0));

/// How many members the cluster under test has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A single member.
    OneNode,
    /// Three members on loopback.
    ThreeNodes,
}

impl Shape {
    /// Members in the cluster.
    pub fn members(self) -> usize {
        match self {
            Shape::OneNode => 1,
            Shape::ThreeNodes => 3,
        }
    }

    /// The table's `shape` column.
    pub fn label(self) -> &'static str {
        match self {
            Shape::OneNode => "1 node",
            Shape::ThreeNodes => "3 nodes",
        }
    }
}

/// Which figure of an `ironcd-bench` report a table line compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// `requests_per_sec` (events/s for `watch`).
    RequestsPerSec,
    /// `latency_secs.p50`.
    P50Latency,
    /// `latency_secs.p99` (put→event for `watch`).
    P99Latency,
}

impl Quantity {
    /// The figure in `report`.
    pub fn of(self, report: &BenchReport) -> f64 {
        match self {
            Quantity::RequestsPerSec => report.requests_per_sec,
            Quantity::P50Latency => report.p50_secs,
            Quantity::P99Latency => report.p99_secs,
        }
    }

    /// How the figure is written.
    pub fn unit(self) -> Unit {
        match self {
            Quantity::RequestsPerSec => Unit::PerSec,
            Quantity::P50Latency | Quantity::P99Latency => Unit::LatencySecs,
        }
    }
}

/// One compared figure of a row.
#[derive(Clone, Debug)]
pub struct Measure {
    /// The table's `metric` column.
    pub metric: &'static str,
    /// Which figure of the report.
    pub quantity: Quantity,
    /// The target on ironcd / etcd, if any.
    pub target: Option<Target>,
}

/// One workload run against each implementation.
#[derive(Clone, Debug)]
pub struct Row {
    /// The cluster's shape.
    pub shape: Shape,
    /// The table's `workload` column.
    pub workload: String,
    /// The `ironcd-bench` run, endpoints aside.
    pub command: BenchCommand,
    /// The figures compared, one table line each.
    pub measures: Vec<Measure>,
}

fn requests_per_sec(target: Option<Target>) -> Measure {
    Measure {
        metric: "requests/s",
        quantity: Quantity::RequestsPerSec,
        target,
    }
}

/// One client's put: its median latency is the target, its rate is shown.
fn single_client_measures() -> Vec<Measure> {
    vec![
        Measure {
            metric: "p50 latency",
            quantity: Quantity::P50Latency,
            target: Some(Target::at_most(0.8)),
        },
        requests_per_sec(None),
    ]
}

/// The load of a row and how the table describes it.
struct Load {
    clients: u32,
    conns: u32,
}

impl Load {
    const fn new(clients: u32, conns: u32) -> Load {
        Load { clients, conns }
    }

    fn describe(&self, clients_word: &str) -> String {
        match (self.clients, self.conns) {
            (1, 1) => format!("1 {clients_word}"),
            (clients, conns) => format!("{clients} {clients_word}s, {conns} conns"),
        }
    }
}

/// Builds a row; `global` are the options beyond the ones every row has.
struct RowSpec<'a> {
    shape: Shape,
    name: &'a str,
    load: Load,
    global: &'a [&'a str],
    workload: &'a str,
    workload_args: &'a [&'a str],
}

impl RowSpec<'_> {
    fn build(self, duration_secs: u64, measures: Vec<Measure>) -> Row {
        // Watch's clients are its writers; the table says so.
        let clients_word = if self.workload == "watch" {
            "writer"
        } else {
            "client"
        };
        let mut global: Vec<String> = vec![
            "--duration".into(),
            format!("{duration_secs}s"),
            "--key-size".into(),
            KEY_SIZE_BYTES.to_string(),
            "--val-size".into(),
            VALUE_SIZE_BYTES.to_string(),
            "--key-space-size".into(),
            KEY_SPACE_SIZE.to_string(),
            "--clients".into(),
            self.load.clients.to_string(),
            "--conns".into(),
            self.load.conns.to_string(),
        ];
        global.extend(self.global.iter().map(|s| s.to_string()));
        Row {
            shape: self.shape,
            workload: format!("{} ({})", self.name, self.load.describe(clients_word)),
            command: BenchCommand {
                global,
                workload: self.workload.to_string(),
                workload_args: self.workload_args.iter().map(|s| s.to_string()).collect(),
            },
            measures,
        }
    }
}

/// Every timed row, single node first, each run for `duration_secs`.
pub fn rows(duration_secs: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |spec: RowSpec<'_>, measures: Vec<Measure>| {
        rows.push(spec.build(duration_secs, measures));
    };
    for shape in [Shape::OneNode, Shape::ThreeNodes] {
        let spec = |name, load, global, workload, workload_args| RowSpec {
            shape,
            name,
            load,
            global,
            workload,
            workload_args,
        };
        let linearizable: &[&str] = &["--consistency", "l"];
        add(
            spec("put", Load::new(256, 16), &[], "put", &[]),
            vec![requests_per_sec(TWICE_THE_RATE)],
        );
        add(
            spec("put", Load::new(1, 1), &[], "put", &[]),
            single_client_measures(),
        );
        add(
            spec(
                "range linearizable",
                Load::new(256, 16),
                linearizable,
                "range",
                &[],
            ),
            vec![requests_per_sec(TWICE_THE_RATE)],
        );
        if shape == Shape::OneNode {
            add(
                spec(
                    "range serializable",
                    Load::new(256, 16),
                    &["--consistency", "s"],
                    "range",
                    &[],
                ),
                vec![requests_per_sec(TWICE_THE_RATE)],
            );
            add(
                spec(
                    "range-prefix, limit 100",
                    Load::new(256, 16),
                    &[],
                    "range-prefix",
                    &["--limit", "100"],
                ),
                vec![requests_per_sec(None)],
            );
        }
        add(
            spec("txn-put", Load::new(256, 16), &[], "txn-put", &[]),
            vec![requests_per_sec(TWICE_THE_RATE)],
        );
        if shape == Shape::OneNode {
            add_single_node_only(&mut add);
        }
    }
    rows
}

/// The rows the issue runs on one node only, after its KV rows.
fn add_single_node_only(add: &mut impl FnMut(RowSpec<'_>, Vec<Measure>)) {
    let spec = |name, load, workload, workload_args| RowSpec {
        shape: Shape::OneNode,
        name,
        load,
        global: &[],
        workload,
        workload_args,
    };
    add(
        spec("txn-mixed", Load::new(256, 16), "txn-mixed", &[]),
        vec![requests_per_sec(None)],
    );
    let watch_rows: [(&str, &[&str]); 2] = [
        ("watch, 100 watchers on a prefix", &["--watchers", "100"]),
        (
            "watch, 10 000 watchers on a prefix",
            &["--watchers", "10000"],
        ),
    ];
    for (name, args) in watch_rows {
        add(spec(name, Load::new(8, 8), "watch", args), watch_measures());
    }
    add(
        spec("watch-get", Load::new(16, 4), "watch-get", &[]),
        vec![requests_per_sec(None)],
    );
    add(
        spec(
            "lease-keepalive",
            Load::new(256, 16),
            "lease-keepalive",
            &[],
        ),
        vec![requests_per_sec(TWICE_THE_RATE)],
    );
    add(
        spec(
            "lease-grant-revoke",
            Load::new(64, 8),
            "lease-grant-revoke",
            &[],
        ),
        vec![requests_per_sec(None)],
    );
}

/// The watch rows' targets: twice etcd's delivered events, half its p99
/// put→event latency.
fn watch_measures() -> Vec<Measure> {
    vec![
        Measure {
            metric: "events/s",
            quantity: Quantity::RequestsPerSec,
            target: TWICE_THE_RATE,
        },
        Measure {
            metric: "p99 put→event latency",
            quantity: Quantity::P99Latency,
            target: Some(Target::at_most(0.5)),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_s_rows_in_order() {
        let rows = rows(10);
        let names: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.shape.label(), r.workload.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("1 node", "put (256 clients, 16 conns)"),
                ("1 node", "put (1 client)"),
                ("1 node", "range linearizable (256 clients, 16 conns)"),
                ("1 node", "range serializable (256 clients, 16 conns)"),
                ("1 node", "range-prefix, limit 100 (256 clients, 16 conns)"),
                ("1 node", "txn-put (256 clients, 16 conns)"),
                ("1 node", "txn-mixed (256 clients, 16 conns)"),
                (
                    "1 node",
                    "watch, 100 watchers on a prefix (8 writers, 8 conns)"
                ),
                (
                    "1 node",
                    "watch, 10 000 watchers on a prefix (8 writers, 8 conns)"
                ),
                ("1 node", "watch-get (16 clients, 4 conns)"),
                ("1 node", "lease-keepalive (256 clients, 16 conns)"),
                ("1 node", "lease-grant-revoke (64 clients, 8 conns)"),
                ("3 nodes", "put (256 clients, 16 conns)"),
                ("3 nodes", "put (1 client)"),
                ("3 nodes", "range linearizable (256 clients, 16 conns)"),
                ("3 nodes", "txn-put (256 clients, 16 conns)"),
            ]
        );
    }

    #[test]
    fn commands_carry_the_global_options_before_the_workload() {
        let rows = rows(7);
        let serializable = &rows[3].command;
        assert_eq!(
            serializable.display(),
            "ironcd-bench --endpoints <endpoints> --json --duration 7s --key-size 16 \
             --val-size 256 --key-space-size 10000 --clients 256 --conns 16 \
             --consistency s range"
        );
        let watch = &rows[7].command;
        assert!(
            watch
                .display()
                .ends_with("--clients 8 --conns 8 watch --watchers 100"),
            "{}",
            watch.display()
        );
    }
}
