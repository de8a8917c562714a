//! Differential test of `etcdctl watch`: the same watch command and the
//! same writes against a one-member etcd 3.4 cluster and a one-member
//! ironcd cluster must print the same lines (member and cluster ids, which
//! differ by design, are normalised). Covers a key, a prefix with
//! `--prev-kv`, a historical `--rev` in JSON, and interactive mode.

use std::thread;
use std::time::Duration;

use ironcd_tests::{etcdctl, ironcd, Cluster, Opts, RunningEtcdctl, Server};

/// How long the watch may take to print what the writes caused.
const PRINTED: Duration = Duration::from_secs(20);

struct Case {
    name: &'static str,
    /// Writes before the watch starts.
    before: &'static [&'static [&'static str]],
    /// The watch command's arguments after `watch`.
    watch: &'static [&'static str],
    /// Interactive mode: lines for its standard input.
    stdin: Option<&'static str>,
    /// Writes once the watch runs.
    after: &'static [&'static [&'static str]],
    /// Lines the watch prints in all.
    lines: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "a key",
        before: &[],
        watch: &["k"],
        stdin: None,
        after: &[
            &["put", "k", "v1"],
            &["put", "other", "x"],
            &["put", "k", "v2"],
            &["del", "k"],
        ],
        // PUT, key, value per put; DELETE, key and an empty value.
        lines: 9,
    },
    Case {
        name: "a prefix with prev-kv",
        before: &[&["put", "p/a", "0"]],
        watch: &["--prefix", "p/", "--prev-kv"],
        stdin: None,
        after: &[
            &["put", "p/a", "1"],
            &["put", "p/b", "2"],
            &["del", "--prefix", "p/"],
        ],
        // The previous key and value come before the new ones.
        lines: 18,
    },
    Case {
        name: "a historical start in JSON",
        before: &[&["put", "h", "1"], &["put", "h", "2"], &["del", "h"]],
        watch: &["--rev=2", "h", "-w", "json"],
        stdin: None,
        after: &[&["put", "h", "3"]],
        lines: 2,
    },
    Case {
        name: "interactive",
        before: &[],
        watch: &["-i"],
        stdin: Some("watch i\nwatch --prefix j\n"),
        after: &[&["put", "i", "x"], &["put", "j1", "y"]],
        lines: 6,
    },
];

/// Replaces the ids that differ between any two clusters.
fn normalise(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = ["\"cluster_id\":", "\"member_id\":"]
        .iter()
        .filter_map(|field| rest.find(field).map(|i| (i, field.len())))
        .min()
    {
        let (i, len) = at;
        out.push_str(&rest[..i + len]);
        rest = &rest[i + len..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        out.push_str("ID");
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// What the watch printed against `server`.
fn transcript(server: Server, case: &Case) -> Vec<String> {
    let cluster = Cluster::start(server, 1, Opts::default());
    let ep = vec![cluster.host_port(0)];
    for write in case.before {
        assert!(etcdctl(&ep, write).status.success(), "{write:?}");
    }
    let mut args = vec!["watch"];
    args.extend_from_slice(case.watch);
    let watch = RunningEtcdctl::spawn(&ep[0], &args, case.stdin);
    // The watch is in place once a write to a key nobody watches is done
    // and a moment passed; etcdctl prints nothing on creation.
    thread::sleep(Duration::from_millis(500));
    for write in case.after {
        assert!(etcdctl(&ep, write).status.success(), "{write:?}");
    }
    // Fewer lines fail the comparison below, which shows them.
    watch.wait_for_lines(case.lines, PRINTED);
    // Anything extra would show up now.
    thread::sleep(Duration::from_millis(300));
    watch.kill().iter().map(|l| normalise(l)).collect()
}

#[test]
fn etcdctl_watch_prints_what_etcd_prints() {
    for case in CASES {
        let (etcd, ours) = thread::scope(|s| {
            let etcd = s.spawn(|| transcript(Server::etcd(), case));
            let ours = s.spawn(|| transcript(ironcd!(), case));
            (etcd.join().unwrap(), ours.join().unwrap())
        });
        assert_eq!(
            etcd.len(),
            case.lines,
            "{}: etcd printed {etcd:#?}",
            case.name
        );
        assert_eq!(
            ours, etcd,
            "{}: ironcd (left) differs from etcd (right)",
            case.name
        );
    }
}
