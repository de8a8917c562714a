//! The member process of `tests/processes.rs`:
//! `raft-member <id> <dir> <id=addr,...> <new|join> <snapshot-count>` runs
//! one member (the in-process harness's `Member`, with its durable file
//! applier) serving on its own address, driven by lines on stdin and
//! answering on stdout:
//!
//! * `propose <payload>` → `ack <payload> <index>` or `err <payload> <why>`;
//! * `status` → `status <id> <role> <applied> <first-index>`;
//! * `block <to>` drops what this member sends to `to`; `heal` undoes it;
//! * `add-peer <id> <addr>` tells the transport of a new member;
//! * `conf <add-learner|promote|remove> <id>` → `conf-ok <kind> <id>` or
//!   `conf-err <kind> <id> <why>`.
//!
//! It exits when stdin closes. A binary of its own, not a test, so the test
//! count stays honest; it uses only the crate's normal dependencies.

#[path = "../common/member.rs"]
mod member;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use ironcd_raft_node::{ConfChange, ConfChangeRequest, Faults};
use member::{test_config, Member};

/// Lines read from stdin or written to stdout but not yet handled.
const LINE_QUEUE_CAPACITY: usize = 1024;

/// The command line: who this member is and where every member listens.
struct Args {
    id: u64,
    dir: PathBuf,
    addrs: BTreeMap<u64, String>,
    join: bool,
    snapshot_count: u64,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [id, dir, addrs, mode, snapshot_count] = &args[..] else {
        eprintln!("usage: raft-member <id> <dir> <id=addr,...> <new|join> <snapshot-count>");
        std::process::exit(2);
    };
    let addrs = addrs
        .split(',')
        .map(|pair| {
            let (id, addr) = pair.split_once('=').expect("id=addr");
            (id.parse().expect("member id"), addr.to_string())
        })
        .collect();
    Args {
        id: id.parse().expect("member id"),
        dir: PathBuf::from(dir),
        addrs,
        join: mode == "join",
        snapshot_count: snapshot_count.parse().expect("snapshot count"),
    }
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let id = args.id;
    let voters: Vec<u64> = args.addrs.keys().copied().collect();
    let peers: Vec<(u64, String)> = args
        .addrs
        .iter()
        .map(|(id, addr)| (*id, format!("http://{addr}")))
        .collect();
    let mut config = test_config(id, &voters);
    if args.join {
        config.join = true;
        config.initial_voters.clear();
    }
    // A small log behind each snapshot: a member killed for a while is sent
    // a snapshot when it comes back.
    config.snapshot_count = args.snapshot_count;
    config.snapshot_catchup_entries = 10;
    let addr = args.addrs[&id].parse().expect("socket address");
    let faults = Faults::new();
    let member = Member::start(config, &args.dir, addr, &peers, &faults).await;

    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<String>(LINE_QUEUE_CAPACITY);
    tokio::spawn(async move {
        let mut stdout = std::io::stdout();
        while let Some(line) = out_rx.recv().await {
            writeln!(stdout, "{line}").expect("stdout");
            stdout.flush().expect("flush stdout");
        }
    });
    // Blocking reads on a thread of their own (tokio's stdin would need a
    // feature the library does not otherwise use).
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<String>(LINE_QUEUE_CAPACITY);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if in_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    while let Some(line) = in_rx.recv().await {
        if let Some(payload) = line.strip_prefix("propose ") {
            let node = member.node.clone();
            let out = out_tx.clone();
            let payload = payload.to_string();
            tokio::spawn(async move {
                let answer = match node.propose(payload.clone().into_bytes()).await {
                    Ok(index) => format!("ack {payload} {index}"),
                    Err(e) => format!("err {payload} {e}"),
                };
                let _ = out.send(answer).await;
            });
        } else if let Some(to) = line.strip_prefix("block ") {
            faults.block(id, to.parse().expect("member id"));
        } else if line == "heal" {
            faults.heal();
        } else if let Some(peer) = line.strip_prefix("add-peer ") {
            let (peer, addr) = peer.split_once(' ').expect("add-peer <id> <addr>");
            member
                .transport
                .add_peer(peer.parse().expect("member id"), format!("http://{addr}"));
        } else if let Some(change) = line.strip_prefix("conf ") {
            conf_change(&member, change, out_tx.clone());
        } else if line == "status" {
            let status = member.status().await;
            let _ = out_tx
                .send(format!(
                    "status {} {:?} {} {}",
                    status.id, status.role, status.applied, status.first_index
                ))
                .await;
        }
    }
}

/// `conf <add-learner|promote|remove> <id>`: proposes the change and
/// answers when it is applied or refused.
fn conf_change(member: &Member, change: &str, out: tokio::sync::mpsc::Sender<String>) {
    let (kind, target) = change.split_once(' ').expect("conf <kind> <id>");
    let target: u64 = target.parse().expect("member id");
    let change = match kind {
        "add-learner" => ConfChange::AddLearner(target),
        "promote" => ConfChange::PromoteLearner(target),
        _ => ConfChange::Remove(target),
    };
    let node = member.node.clone();
    let kind = kind.to_string();
    tokio::spawn(async move {
        let request = ConfChangeRequest::single(change, Vec::new());
        let answer = match node.propose_conf_change(request).await {
            Ok(_) => format!("conf-ok {kind} {target}"),
            Err(e) => format!("conf-err {kind} {target} {e}"),
        };
        let _ = out.send(answer).await;
    });
}
