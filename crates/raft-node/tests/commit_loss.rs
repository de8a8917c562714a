//! A commit index alone is written without an fsync (raft's MustSync rule):
//! power loss can take the newest one. The member must still start with
//! the applier's durable index, which can then be past the recovered commit.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ironcd_raft_node::{Apply, GrpcTransport, RaftNode, TransportConfig};
use ironcd_wal::{MemIo, SnapshotMarker, Wal, WalIo};
use tokio::sync::watch;

const DIR: &str = "/data/member";

/// Applies entries by noting their index (each reported durable at once,
/// as an applier with its own synced store would); panics on a repeat.
fn spawn_applier(
    node: RaftNode,
    mut stream: ironcd_raft_node::ApplyStream,
    floor: u64,
) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(floor);
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            if let Apply::Entries(entries) = item {
                for entry in &entries {
                    assert!(
                        entry.index > *tx.borrow(),
                        "entry {} delivered twice",
                        entry.index
                    );
                    tx.send_replace(entry.index);
                }
                node.report_durable_applied(entries.last().unwrap().index);
            }
        }
    });
    rx
}

fn start(io: &MemIo, applied: u64) -> (RaftNode, watch::Receiver<u64>) {
    let config = test_config(1, &[1]);
    let transport = GrpcTransport::new(1, CLUSTER_ID, Vec::new(), TransportConfig::default());
    let (node, stream) = RaftNode::start_with_io(
        config,
        Path::new(DIR),
        Arc::new(transport),
        applied,
        Arc::new(io.clone()),
    )
    .expect("the member starts");
    let applied_rx = spawn_applier(node.clone(), stream, applied);
    (node, applied_rx)
}

async fn wait_applied(rx: &mut watch::Receiver<u64>, index: u64) {
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|&a| a >= index))
        .await
        .expect("applied in time")
        .expect("applier running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_index_is_raised_to_the_applied_one() {
    let io = MemIo::new();
    io.create_dir_all(Path::new("/data")).unwrap();
    io.sync_dir(Path::new("/")).unwrap();

    let (node, mut applied) = start(&io, 0);
    let mut last = 0;
    for i in 0..5 {
        last = propose_retrying(&node, payload("before", i)).await;
    }
    wait_applied(&mut applied, last).await;
    node.stop().await;
    io.crash();

    // The newest commit index was never synced: it is gone.
    let shared: Arc<dyn WalIo> = Arc::new(io.clone());
    let (wal, contents) = Wal::open_with_io(
        shared,
        Path::new(DIR).join("wal"),
        SnapshotMarker::default(),
        &Default::default(),
    )
    .unwrap()
    .read_all()
    .unwrap();
    drop(wal);
    assert!(
        contents.hard_state.commit < last,
        "commit {} survived; the test needs it lost",
        contents.hard_state.commit
    );
    assert_eq!(
        contents.entries.last().map(|e| e.index),
        Some(last),
        "entries are synced"
    );

    // Restart with what the applier holds: nothing is delivered twice, and
    // the member goes on.
    let (node, mut applied) = start(&io, last);
    let next = propose_retrying(&node, payload("after", 0)).await;
    assert!(next > last);
    wait_applied(&mut applied, next).await;
    let status = node.status().await.unwrap();
    assert!(
        status.commit >= next && status.applied >= next,
        "{status:?}"
    );
    node.stop().await;
}
