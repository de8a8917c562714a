//! `bench-compare --quick` end to end: real etcd, real ironcd, the real
//! `ironcd-bench`; every row, both implementations, both shapes. Checks the
//! section's shape, never the figures (timing is not asserted in tests).

use std::path::PathBuf;
use std::process::Command;

const BEGIN: &str = "<!-- bench-compare:begin -->";
const END: &str = "<!-- bench-compare:end -->";

/// The workspace's `ironcd`: next to the test's own directory (`deps`).
fn ironcd_binary() -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test's own path");
    let path = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from <target>/release/deps")
        .join("ironcd");
    assert!(
        path.is_file(),
        "{} is missing: build it first: cargo build --release -p ironcd-server",
        path.display()
    );
    path
}

/// One table row of the section, split into its cells.
struct TableRow {
    shape: String,
    workload: String,
    metric: String,
    etcd: String,
    ironcd: String,
    ratio: String,
}

fn table_rows(section: &str) -> Vec<TableRow> {
    section
        .lines()
        .filter(|line| line.starts_with("| ") && !line.starts_with("| shape |"))
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_string())
                .collect();
            assert_eq!(cells.len(), 8, "a table row has 8 cells: {line}");
            TableRow {
                shape: cells[0].clone(),
                workload: cells[1].clone(),
                metric: cells[2].clone(),
                etcd: cells[3].clone(),
                ironcd: cells[4].clone(),
                ratio: cells[5].clone(),
            }
        })
        .collect()
}

/// A measured figure: starts with a digit (`20.7k/s`, `0.43 ms`, `3.1 MiB`).
fn is_figure(cell: &str) -> bool {
    cell.starts_with(|c: char| c.is_ascii_digit())
}

fn is_ratio(cell: &str) -> bool {
    is_figure(cell) && cell.ends_with('×')
}

#[test]
fn quick_run_fills_every_row_and_keeps_the_rest_of_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("BENCHMARKS.md");
    let before = format!("# Benchmarks\n\nHand-written text ✓\n\n{BEGIN}\n");
    let after = format!("{END}\n\n## Later section\n\nmore text, no final newline");
    std::fs::write(&out, format!("{before}stale table\n{after}")).expect("write the file");

    let output = Command::new(env!("CARGO_BIN_EXE_bench-compare"))
        .arg("--quick")
        .arg("--out")
        .arg(&out)
        .env("IRONCD_BIN", ironcd_binary())
        .output()
        .expect("run bench-compare");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench-compare failed:\n{stderr}");

    let written = std::fs::read_to_string(&out).expect("read the output");
    assert!(
        written.starts_with(&before),
        "text before the markers changed"
    );
    assert!(written.ends_with(&after), "text after the markers changed");
    let section = &written[before.len()..written.len() - after.len()];
    assert!(
        section.starts_with("## ironcd vs etcd 3.4 — bench-compare (quick smoke run"),
        "{section}"
    );
    assert!(!section.contains("stale table"));

    let rows = table_rows(section);
    let described = |row: &TableRow| format!("{} {} {}", row.shape, row.workload, row.metric);
    let kv = ["put ", "range ", "range-prefix", "txn-put ", "txn-mixed "];
    let mut kv_rows = 0;
    let mut footprint_rows = 0;
    for row in &rows {
        assert!(is_figure(&row.etcd), "no etcd figure: {}", described(row));
        if kv.iter().any(|w| row.workload.starts_with(w)) {
            kv_rows += 1;
            assert!(
                is_figure(&row.ironcd),
                "no ironcd figure: {}",
                described(row)
            );
            assert!(is_ratio(&row.ratio), "no ratio: {}", described(row));
        } else if row.workload.starts_with("fill ") {
            let measured = ["peak RSS", "data directory", "restart"];
            if measured.iter().any(|m| row.metric.starts_with(m)) {
                footprint_rows += 1;
                assert!(
                    is_figure(&row.ironcd),
                    "no ironcd figure: {}",
                    described(row)
                );
                assert!(is_ratio(&row.ratio), "no ratio: {}", described(row));
            }
        } else {
            assert!(
                is_figure(&row.ironcd) || row.ironcd == "not yet served",
                "ironcd cell is neither a figure nor \"not yet served\": {} {}",
                described(row),
                row.ironcd
            );
        }
    }
    // One node: put, put with one client (p50 and rate), range ×2,
    // range-prefix, txn-put, txn-mixed; three nodes: put, put with one
    // client (p50 and rate), range, txn-put.
    assert_eq!(kv_rows, 8 + 5, "KV table lines:\n{section}");
    assert_eq!(footprint_rows, 3, "resource lines:\n{section}");
    for shape in ["1 node", "3 nodes"] {
        assert!(rows.iter().any(|r| r.shape == shape), "no {shape} rows");
    }
    for workload in [
        "watch",
        "watch-get",
        "lease-keepalive",
        "lease-grant-revoke",
    ] {
        assert!(
            rows.iter()
                .any(|r| r.workload.starts_with(&format!("{workload} "))
                    || r.workload.starts_with(&format!("{workload},"))),
            "no {workload} row:\n{section}"
        );
    }
    assert!(section.contains("ironcd-bench --endpoints <endpoints> --json"));
}
