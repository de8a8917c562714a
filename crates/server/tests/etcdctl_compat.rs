//! Differential test: one etcdctl script (`tests/etcdctl/script.txt`) runs
//! against a 3-member etcd 3.4 cluster and a 3-member ironcd cluster; every
//! command's exit status, stdout and stderr must be equal once run-specific
//! values are normalised (`tests/etcdctl/normalise.rs`).

#[path = "etcdctl/normalise.rs"]
mod normalise;

use std::fmt::Write as _;
use std::thread;
use std::time::{Duration, Instant};

use ironcd_tests::{etcdctl_with_stdin, free_ports, ironcd, Cluster, Opts, Server};
use normalise::{Symbols, View};

const SCRIPT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/etcdctl/script.txt");
const MEMBERS: usize = 3;
const SPARE_PEER_PORTS: usize = 2;
/// etcd refuses reconfiguration with this until the member serving the
/// request has been connected to every voting member for 5 s (its
/// `HealthInterval`, under the default `--strict-reconfig-check`).
const UNHEALTHY: &str = "etcdserver: unhealthy cluster";
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);
const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// One etcdctl invocation of the script.
#[derive(Clone, Debug)]
struct Step {
    line: usize,
    text: String,
    words: Vec<String>,
    stdin: Option<String>,
    all_endpoints: bool,
    sort: bool,
    /// Run again while etcd answers "unhealthy cluster" (bounded).
    retry: bool,
    /// Endpoints as URLs (`http://127.0.0.1:PORT`), not `127.0.0.1:PORT`.
    urls: bool,
}

/// What one step printed, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

#[test]
fn etcdctl_matches_etcd() {
    let steps = parse_script(&read_script());
    let (etcd, ironcd) = thread::scope(|scope| {
        let etcd = scope.spawn(|| run_script(Server::etcd(), &steps));
        let ironcd = scope.spawn(|| run_script(ironcd!(), &steps));
        (joined(etcd.join()), joined(ironcd.join()))
    });
    let etcd = etcd.unwrap_or_else(|e| panic!("the reference etcd run failed: {e}"));
    let ironcd = ironcd.unwrap_or_else(|e| panic!("ironcd could not run the script: {e}"));
    let report = compare(&steps, &etcd, &ironcd, "etcd", "ironcd");
    assert!(report.is_empty(), "ironcd differs from etcd:\n{report}");
}

/// Validates the normalisation: two fresh etcd clusters must print the same.
#[test]
fn etcdctl_script_is_deterministic_on_etcd() {
    let steps = parse_script(&read_script());
    let (first, second) = thread::scope(|scope| {
        let first = scope.spawn(|| run_script(Server::etcd(), &steps));
        let second = scope.spawn(|| run_script(Server::etcd(), &steps));
        (joined(first.join()), joined(second.join()))
    });
    let first = first.unwrap_or_else(|e| panic!("first etcd run failed: {e}"));
    dump_if_asked(&steps, &first);
    let second = second.unwrap_or_else(|e| panic!("second etcd run failed: {e}"));
    let report = compare(&steps, &first, &second, "etcd run 1", "etcd run 2");
    assert!(report.is_empty(), "etcd runs differ:\n{report}");
}

#[test]
fn script_parser_reads_modifiers_stdin_and_quotes() {
    let script = "# c\n$ @all @sort @retry @urls get \"\" 'a b' c\n> x\n>\n$ put k v\n";
    let steps = parse_script(script);
    assert_eq!(steps.len(), 2);
    let [first, second] = &steps[..] else {
        unreachable!()
    };
    assert!(first.all_endpoints && first.sort && first.retry && first.urls);
    assert!(!(second.all_endpoints || second.sort || second.retry || second.urls));
    assert_eq!(steps[0].words, ["get", "", "a b", "c"]);
    assert_eq!(steps[0].stdin.as_deref(), Some("x\n\n"));
    assert_eq!((steps[1].line, steps[1].stdin.as_deref()), (5, None));
}

/// With `ETCDCTL_COMPAT_DUMP=<file>`, writes a run's normalised records
/// there: the way to see what etcd prints for a new script line.
fn dump_if_asked(steps: &[Step], records: &[Record]) {
    let Some(path) = std::env::var_os("ETCDCTL_COMPAT_DUMP") else {
        return;
    };
    let mut text = String::new();
    for (step, record) in steps.iter().zip(records) {
        let _ = writeln!(text, "=== line {}: $ {}", step.line, step.text);
        let _ = writeln!(text, "exit: {:?}", record.status);
        let _ = writeln!(
            text,
            "stdout:\n{}\nstderr:\n{}",
            record.stdout, record.stderr
        );
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
}

fn read_script() -> String {
    std::fs::read_to_string(SCRIPT_PATH).unwrap_or_else(|e| panic!("read {SCRIPT_PATH}: {e}"))
}

/// A panicking run becomes an error carrying its panic message.
fn joined(result: thread::Result<Vec<Record>>) -> Result<Vec<Record>, String> {
    result.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

fn parse_script(script: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (index, line) in script.lines().enumerate() {
        let line_number = index + 1;
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(parse_command(line_number, command));
        } else if let Some(input) = line.strip_prefix('>') {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("line {line_number}: stdin before any command"));
            let stdin = step.stdin.get_or_insert_with(String::new);
            stdin.push_str(input.strip_prefix(' ').unwrap_or(input));
            stdin.push('\n');
        } else {
            let trimmed = line.trim();
            assert!(
                trimmed.is_empty() || trimmed.starts_with('#'),
                "line {line_number}: not a command, stdin or comment: {line:?}"
            );
        }
    }
    steps
}

fn parse_command(line: usize, command: &str) -> Step {
    let mut words = split_words(command)
        .unwrap_or_else(|e| panic!("line {line}: {e}: {command:?}"))
        .into_iter()
        .peekable();
    let (mut all_endpoints, mut sort, mut retry, mut urls) = (false, false, false, false);
    while let Some(modifier) = words.next_if(|w| w.starts_with('@')) {
        match modifier.as_str() {
            "@all" => all_endpoints = true,
            "@sort" => sort = true,
            "@retry" => retry = true,
            "@urls" => urls = true,
            other => panic!("line {line}: unknown modifier {other}"),
        }
    }
    Step {
        line,
        text: command.to_string(),
        words: words.collect(),
        stdin: None,
        all_endpoints,
        sort,
        retry,
        urls,
    }
}

/// Splits like a POSIX shell for the cases the script uses: whitespace
/// separates words; double or single quotes group and may be empty.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(other) => word.push(other),
                        None => return Err(format!("unterminated {c}")),
                    }
                }
            }
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

fn run_script(implementation: Server, steps: &[Step]) -> Vec<Record> {
    let cluster = Cluster::start(implementation, MEMBERS, Opts::default());
    cluster.wait_for_leader();
    cluster.ensure_leader(0);
    let mut symbols = symbols_for(&cluster);
    steps
        .iter()
        .map(|step| run_step(&cluster, &mut symbols, step))
        .collect()
}

fn symbols_for(cluster: &Cluster) -> Symbols {
    let mut symbols = Symbols::default();
    for i in 0..cluster.len() {
        let status = cluster
            .status(i)
            .unwrap_or_else(|| panic!("member {i} does not answer status"));
        let name = format!("M{}", i + 1);
        symbols.add_id(&format!("{name}_ID"), status.member_id);
        symbols.add_id("CLUSTER_ID", status.cluster_id);
        symbols.add_port(&format!("{name}_CLIENT"), cluster.client_port(i));
        symbols.add_port(&format!("{name}_PEER"), cluster.peer_port(i));
    }
    for (k, port) in free_ports(SPARE_PEER_PORTS).into_iter().enumerate() {
        symbols.add_port(&format!("SPARE{}_PEER", k + 1), port);
    }
    let dir = cluster
        .dir()
        .to_str()
        .expect("a UTF-8 temp dir")
        .to_string();
    symbols.add_path("TMP", &dir);
    symbols
}

fn run_step(cluster: &Cluster, symbols: &mut Symbols, step: &Step) -> Record {
    let words: Vec<String> = step.words.iter().map(|w| symbols.substitute(w)).collect();
    let stdin = step.stdin.as_deref().map(|s| symbols.substitute(s));
    let members = if step.all_endpoints { cluster.len() } else { 1 };
    let endpoints: Vec<String> = (0..members)
        .map(|i| {
            if step.urls {
                cluster.endpoint(i)
            } else {
                cluster.host_port(i)
            }
        })
        .collect();
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    let deadline = Instant::now() + RETRY_TIMEOUT;
    let output = loop {
        let output = etcdctl_with_stdin(&endpoints, &args, stdin.as_deref());
        let unhealthy = String::from_utf8_lossy(&output.stderr).contains(UNHEALTHY);
        if !(step.retry && unhealthy) || Instant::now() >= deadline {
            break output;
        }
        thread::sleep(RETRY_INTERVAL);
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let view = View::of(&step.words, step.sort);
    symbols.learn_added_member(&stdout);
    symbols.learn_granted_lease(&stdout, &view);
    if words.first().map(String::as_str) == Some("move-leader") && output.status.success() {
        // Later commands print every member's view of the leader.
        cluster.wait_for_leader();
    }
    Record {
        status: output.status.code(),
        stdout: symbols.normalise(&stdout, &view),
        stderr: symbols.normalise(&stderr, &view.stderr()),
    }
}

/// A readable report of every step whose records differ; empty if none.
fn compare(
    steps: &[Step],
    expected: &[Record],
    got: &[Record],
    expected_name: &str,
    got_name: &str,
) -> String {
    let mut report = String::new();
    for ((step, want), have) in steps.iter().zip(expected).zip(got) {
        if want == have {
            continue;
        }
        let _ = writeln!(report, "=== script line {}: $ {}", step.line, step.text);
        if want.status != have.status {
            let _ = writeln!(
                report,
                "exit status: {expected_name} {:?}, {got_name} {:?}",
                want.status, have.status
            );
        }
        for (stream, want_text, have_text) in [
            ("stdout", &want.stdout, &have.stdout),
            ("stderr", &want.stderr, &have.stderr),
        ] {
            if want_text != have_text {
                let _ = writeln!(report, "{stream} (- {expected_name}, + {got_name}):");
                report.push_str(&line_diff(want_text, have_text));
            }
        }
    }
    let differing = report.matches("=== script line").count();
    if differing > 0 {
        let _ = writeln!(report, "{differing} of {} commands differ", steps.len());
    }
    report
}

/// Lines of context kept around each change in a diff.
const DIFF_CONTEXT: usize = 3;

/// A line diff from a longest common subsequence: `-` only in `a`, `+` only
/// in `b`, two spaces in both; unchanged runs beyond [`DIFF_CONTEXT`] lines
/// from a change are elided as `...`.
fn line_diff(a: &str, b: &str) -> String {
    let ops = diff_ops(a, b);
    let changed: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].0 != ' ').collect();
    let near_change = |i: usize| changed.iter().any(|&c| c.abs_diff(i) <= DIFF_CONTEXT);
    let mut out = String::new();
    let mut elided = false;
    for (i, (mark, line)) in ops.iter().enumerate() {
        if near_change(i) {
            let _ = writeln!(out, "  {mark} {line}");
            elided = false;
        } else if !elided {
            out.push_str("    ...\n");
            elided = true;
        }
    }
    out
}

fn diff_ops<'a>(a: &'a str, b: &'a str) -> Vec<(char, &'a str)> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', b[j]));
            j += 1;
        } else {
            ops.push(('-', a[i]));
            i += 1;
        }
    }
    ops
}

#[test]
fn leases_are_learned_in_grant_order_and_remaining_ttls_masked() {
    let words = |text: &str| split_words(text).expect("words");
    let mut symbols = Symbols::default();
    let grant = View::of(&words("lease grant 600"), false);
    symbols.learn_granted_lease("lease 0694d7c0ffee0001 granted with TTL(600s)\n", &grant);
    let grant_json = View::of(&words("lease grant 600 -w json"), false);
    let json = format!(
        "{{\"revision\":31,\"ID\":{},\"TTL\":600}}\n",
        0x694d7c0ffee0003_u64
    );
    symbols.learn_granted_lease(&json, &grant_json);
    // A time-to-live prints "granted with TTL" too, but grants nothing.
    let ttl = View::of(&words("lease timetolive ${LEASE1} --keys"), false);
    let ttl_line =
        "lease 0694d7c0ffee0001 granted with TTL(600s), remaining(599s), attached keys([b a])";
    symbols.learn_granted_lease(ttl_line, &ttl);
    assert_eq!(
        symbols.substitute("x ${LEASE2} ${LEASE3}"),
        "x 694d7c0ffee0003 ${LEASE3}"
    );
    assert_eq!(
        symbols.normalise(ttl_line, &ttl),
        "lease LEASE1 granted with TTL(600s), remaining(*s), attached keys([a b])"
    );
    let expired = "lease 000000001234abcd granted with TTL(0s), remaining(-1s)";
    assert_eq!(symbols.normalise(expired, &ttl), expired);
    let ttl_json = View::of(&words("lease timetolive ${LEASE2} -w json"), false);
    let json = format!(
        "{{\"id\":{},\"ttl\":599,\"granted-ttl\":600,\"keys\":[\"Yg==\",\"YQ==\"]}}",
        0x694d7c0ffee0003_u64
    );
    let normalised: serde_json::Value =
        serde_json::from_str(&symbols.normalise(&json, &ttl_json)).expect("JSON");
    assert_eq!(
        normalised,
        serde_json::json!({"id": "LEASE2", "ttl": "*", "granted-ttl": 600, "keys": ["YQ==", "Yg=="]})
    );
    let ttl_fields = View::of(&words("lease timetolive ${LEASE2} -w fields"), false);
    let fields = "\"TTL\" : 599\n\"GrantedTTL\" : 600";
    assert_eq!(
        symbols.normalise(fields, &ttl_fields),
        "\"TTL\" : *\n\"GrantedTTL\" : 600"
    );
    let keep_alive = View::of(&words("lease keep-alive --once ${LEASE1} -w fields"), false);
    assert_eq!(
        symbols.normalise("\"TTL\" : 600", &keep_alive),
        "\"TTL\" : 600"
    );
}

#[test]
fn line_diff_marks_removed_and_added_lines() {
    assert_eq!(
        line_diff("a\nb\nc", "a\nc\nd"),
        "    a\n  - b\n    c\n  + d\n"
    );
    let long: String = (0..20).map(|i| format!("{i}\n")).collect();
    let changed = long.replace("10\n", "ten\n");
    let diff = line_diff(&long, &changed);
    assert_eq!(
        diff.lines().filter(|l| l.trim() == "...").count(),
        2,
        "{diff}"
    );
    assert!(diff.contains("  - 10\n  + ten\n") || diff.contains("  + ten\n  - 10\n"));
}
