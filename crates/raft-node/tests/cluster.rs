//! Clusters of in-process members on real loopback gRPC, each with its own
//! WAL on disk and a durable file applier: agreement, leader loss, restart,
//! snapshot catch-up, partitions and membership changes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ironcd_raft_node::{ConfChange, ConfChangeRequest, Error, Role};

fn runtime_test(test: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(test);
}

/// Proposes `count` payloads tagged `tag`, spread round-robin over `via`,
/// concurrently; returns them once all are acknowledged.
async fn propose_spread(cluster: &Cluster, via: &[u64], tag: &str, count: u64) -> Vec<Vec<u8>> {
    let mut tasks = Vec::new();
    for i in 0..count {
        let node = cluster.node(via[i as usize % via.len()]);
        let data = payload(tag, i);
        tasks.push(tokio::spawn(async move {
            propose_retrying(&node, data.clone()).await;
            data
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.push(task.await.unwrap());
    }
    acked
}

#[test]
fn one_three_and_five_members_commit_the_same_entries_in_the_same_order() {
    runtime_test(async {
        for n in [1, 3, 5] {
            let mut cluster = Cluster::start(n).await;
            cluster.wait_leader().await;
            let all = ids(n);
            let acked = propose_spread(&cluster, &all, &format!("n{n}"), 60).await;
            cluster.wait_applied(&all, &acked).await;
            // Same entries, not just a shared prefix: every member applied all.
            let reference = cluster.members[&1].log.lock().entries.clone();
            for id in &all {
                let entries = cluster.members[id].log.lock().entries.clone();
                assert_eq!(entries, reference, "member {id} of {n}");
            }
            cluster.check_one_leader_per_term().await;
            cluster.stop_all().await;
        }
    });
}

#[test]
fn losing_the_leader_elects_another_and_every_member_restarts_from_disk() {
    runtime_test(async {
        let mut cluster = Cluster::start(3).await;
        let leader = cluster.wait_leader().await;
        let mut acked = propose_spread(&cluster, &ids(3), "before", 40).await;
        cluster.wait_applied(&ids(3), &acked).await;

        let election_timeout = Duration::from_millis(test_config(1, &[1]).election_timeout_ms());
        let killed_at = Instant::now();
        cluster.stop_member(leader).await;
        let rest: Vec<u64> = ids(3).into_iter().filter(|id| *id != leader).collect();
        let new_leader = cluster.wait_leader_among(&rest).await;
        let took = killed_at.elapsed();
        assert_ne!(new_leader, leader);
        // The issue asks for a new leader within two election timeouts (a
        // follower's randomized timeout is below 2x, plus a pre-vote round
        // trip). The only timing bound in the suite: the extra second is for
        // a loaded CI machine, and still catches a cluster left leaderless.
        assert!(
            took < election_timeout * 2 + Duration::from_secs(1),
            "new leader after {took:?}"
        );

        acked.extend(propose_spread(&cluster, &rest, "after", 40).await);
        cluster.wait_applied(&rest, &acked).await;

        cluster.start_member(leader, &ids(3), false).await;
        cluster.wait_applied(&ids(3), &acked).await;

        // Every member from disk at once; nothing acknowledged is lost, and
        // the cluster goes on.
        cluster.stop_all().await;
        for id in ids(3) {
            cluster.start_member(id, &ids(3), false).await;
        }
        cluster.wait_leader().await;
        acked.extend(propose_spread(&cluster, &ids(3), "restarted", 20).await);
        cluster.wait_applied(&ids(3), &acked).await;
        cluster.stop_all().await;
    });
}

fn small_snapshots(config: &mut ironcd_raft_node::Config) {
    config.snapshot_count = 30;
    config.snapshot_catchup_entries = 5;
    // The applier makes snapshots inline, not draining its stream while it
    // waits: with a one-batch queue the Ready loop is often blocked on it,
    // and must still serve the snapshot request.
    config.apply_queue_capacity = 1;
}

#[test]
fn a_follower_behind_the_compacted_log_catches_up_by_snapshot() {
    runtime_test(async {
        let mut cluster = Cluster::start_with(3, small_snapshots).await;
        let leader = cluster.wait_leader().await;
        let behind = if leader == 3 { 2 } else { 3 };
        let others: Vec<u64> = ids(3).into_iter().filter(|id| *id != behind).collect();
        cluster.faults.partition(&[behind], &others);
        let acked = propose_spread(&cluster, &others, "while-away", 150).await;
        cluster.wait_applied(&others, &acked).await;
        // The snapshot and the compaction after it trail the apply (on a
        // loaded machine by a while): the follower must still be away
        // when the leader's log no longer holds what it lacks.
        let node = &cluster.members[&leader];
        wait_until(
            "the leader to compact its log",
            Duration::from_secs(20),
            || async { node.status().await.first_index > 2 },
        )
        .await;
        assert!(node.log.lock().snapshots_made > 0);

        cluster.faults.heal();
        cluster.wait_applied(&ids(3), &acked).await;
        let restored = cluster.members[&behind].log.lock().snapshots_restored;
        assert!(
            restored >= 1,
            "member {behind} caught up without a snapshot"
        );

        // It restarts from its own snapshot and WAL.
        cluster.stop_member(behind).await;
        cluster.start_member(behind, &ids(3), false).await;
        let more = propose_spread(&cluster, &ids(3), "later", 10).await;
        cluster.wait_applied(&ids(3), &[acked, more].concat()).await;
        assert!(cluster.members[&behind].status().await.snapshot_index > 1);
        cluster.stop_all().await;
    });
}

#[test]
fn a_partitioned_minority_makes_no_progress_and_the_cluster_heals() {
    runtime_test(async {
        let mut cluster = Cluster::start(5).await;
        let leader = cluster.wait_leader().await;
        let mut acked = propose_spread(&cluster, &ids(5), "start", 20).await;

        // The old leader and one follower on one side, three on the other.
        let minority = vec![leader, if leader == 1 { 2 } else { 1 }];
        let majority: Vec<u64> = ids(5)
            .into_iter()
            .filter(|id| !minority.contains(id))
            .collect();
        cluster.faults.partition(&minority, &majority);
        let stuck = cluster
            .node(minority[1])
            .propose(b"minority".to_vec())
            .await;
        assert!(
            matches!(
                stuck,
                Err(Error::Timeout | Error::NoLeader | Error::Dropped)
            ),
            "{stuck:?}"
        );
        let new_leader = cluster.wait_leader_among(&majority).await;
        assert!(majority.contains(&new_leader));
        acked.extend(propose_spread(&cluster, &majority, "majority", 30).await);
        for id in &minority {
            let payloads = cluster.members[id].log.lock().payloads();
            assert!(
                !payloads.contains(&payload("majority", 0)),
                "minority member {id} applied a majority write"
            );
        }

        cluster.faults.heal();
        cluster.wait_applied(&ids(5), &acked).await;
        let log = cluster.members[&minority[1]].log.lock().payloads();
        // The minority's proposal never committed before the heal: if it
        // commits at all it is after every majority write before it.
        if let Some(at) = log.iter().position(|p| p == b"minority") {
            assert!(
                at > log
                    .iter()
                    .position(|p| p == &payload("majority", 0))
                    .unwrap()
            );
        }
        drop(log);

        // One-way: the leader cannot reach one follower. Pre-vote and
        // check-quorum keep the leader, and the follower catches up after.
        let leader = cluster.wait_leader().await;
        let deaf = if leader == 5 { 4 } else { 5 };
        cluster.faults.block(leader, deaf);
        acked.extend(propose_spread(&cluster, &[leader], "one-way", 20).await);
        cluster.faults.heal();
        cluster.wait_applied(&ids(5), &acked).await;

        // Lossy, slow links still make progress.
        cluster.faults.drop_one_in(5);
        cluster.faults.delay_ms(15);
        acked.extend(propose_spread(&cluster, &ids(5), "lossy", 20).await);
        cluster.faults.heal();
        cluster.wait_applied(&ids(5), &acked).await;
        cluster.check_one_leader_per_term().await;
        cluster.stop_all().await;
    });
}

/// Proposes without pause until told to stop, returning what was
/// acknowledged; the counter follows the acknowledgements as they come.
struct WriteLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked_count: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<Vec<u8>>>,
}

fn write_load(cluster: &Cluster, tag: &'static str) -> WriteLoad {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let nodes: Vec<_> = cluster.members.values().map(|m| m.node.clone()).collect();
    let (flag, count) = (stop.clone(), acked_count.clone());
    let task = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut i = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let data = payload(tag, i);
            // Whichever member answers: a removed or stopped one fails.
            for node in &nodes {
                if node.propose(data.clone()).await.is_ok() {
                    acked.push(data.clone());
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
            }
            i += 1;
        }
        acked
    });
    WriteLoad {
        stop,
        acked_count,
        task,
    }
}

#[test]
fn membership_changes_under_write_load() {
    runtime_test(async {
        let mut cluster = Cluster::start(3).await;
        let leader = cluster.wait_leader().await;
        let load = write_load(&cluster, "load");

        // A new member joins as a learner: the others must know its address.
        cluster.start_member(4, &[], true).await;
        let url = format!("http://{}", cluster.addrs[&4]);
        for member in cluster.members.values() {
            member.transport.add_peer(4, url.clone());
        }
        for (id, url) in cluster.peer_urls() {
            cluster.members[&4].transport.add_peer(id, url);
        }
        let leader_node = cluster.node(leader);
        leader_node
            .propose_conf_change(ConfChangeRequest::single(
                ConfChange::AddLearner(4),
                b"m4".to_vec(),
            ))
            .await
            .unwrap();
        wait_until(
            "the learner to catch up",
            Duration::from_secs(20),
            || async {
                let status = cluster.members[&4].status().await;
                status.membership.learners == vec![4]
                    && status.applied + 5 >= cluster.members[&leader].status().await.commit
            },
        )
        .await;
        assert_eq!(cluster.members[&4].status().await.role, Role::Follower);

        leader_node
            .propose_conf_change(ConfChangeRequest::single(
                ConfChange::PromoteLearner(4),
                vec![],
            ))
            .await
            .unwrap();
        let status = leader_node.status().await.unwrap();
        assert_eq!(status.membership.voters, vec![1, 2, 3, 4]);
        assert!(status.membership.learners.is_empty());

        // Remove a follower, then hand leadership to the new member.
        let removed = ids(3).into_iter().find(|id| *id != leader).unwrap();
        leader_node
            .propose_conf_change(ConfChangeRequest::single(
                ConfChange::Remove(removed),
                vec![],
            ))
            .await
            .unwrap();
        cluster.stop_member(removed).await;
        leader_node.transfer_leader(4).await.unwrap();
        wait_until(
            "leadership to move to member 4",
            Duration::from_secs(20),
            || async { cluster.members[&4].status().await.role == Role::Leader },
        )
        .await;

        // The old leader removes itself through the new one.
        cluster
            .node(4)
            .propose_conf_change(ConfChangeRequest::single(
                ConfChange::Remove(leader),
                vec![],
            ))
            .await
            .unwrap();
        let remaining: Vec<u64> = cluster
            .members
            .keys()
            .copied()
            .filter(|id| *id != leader)
            .collect();
        cluster.wait_leader_among(&remaining).await;

        // Wait for the load to pass the count (bounded) rather than count
        // what a window of fixed length saw: on a loaded machine the window
        // held 8. Proposals through the removed leader time out, so the
        // remaining ones come slowly.
        wait_until(
            "the load to make progress",
            Duration::from_secs(60),
            || async { load.acked_count.load(std::sync::atomic::Ordering::Relaxed) > 10 },
        )
        .await;
        load.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acked = load.task.await.unwrap();
        assert!(acked.len() > 10, "the load made progress: {}", acked.len());
        let more = propose_spread(&cluster, &remaining, "after", 10).await;
        cluster
            .wait_applied(&remaining, &[acked, more].concat())
            .await;
        let membership = cluster.node(4).status().await.unwrap().membership;
        let mut voters = remaining.clone();
        voters.sort_unstable();
        assert_eq!(membership.voters, voters);
        cluster.stop_all().await;
    });
}

#[test]
fn a_joint_configuration_is_left_even_when_entered_explicitly() {
    runtime_test(async {
        let mut cluster = Cluster::start(3).await;
        let leader = cluster.wait_leader().await;
        // Swap a voter for a learner-to-be in one joint change that raft
        // would leave only when told to.
        let follower = ids(3).into_iter().find(|id| *id != leader).unwrap();
        let request = ConfChangeRequest {
            changes: vec![
                ConfChange::Remove(follower),
                ConfChange::AddLearner(follower),
            ],
            explicit_joint: true,
            ..Default::default()
        };
        cluster
            .node(leader)
            .propose_conf_change(request)
            .await
            .unwrap();
        // The leader that entered it may die at once: whoever leads next
        // finds the joint configuration and leaves it.
        cluster.stop_member(leader).await;
        let rest: Vec<u64> = ids(3).into_iter().filter(|id| *id != leader).collect();
        cluster.start_member(leader, &ids(3), false).await;
        wait_until(
            "the joint configuration to be left",
            Duration::from_secs(20),
            || async {
                let status = cluster.members[&follower].status().await;
                !status.membership.is_joint() && status.membership.learners == vec![follower]
            },
        )
        .await;
        let _ = rest;
        let acked = propose_spread(&cluster, &ids(3), "after-joint", 10).await;
        cluster.wait_applied(&ids(3), &acked).await;
        cluster.stop_all().await;
    });
}

#[test]
fn reads_wait_for_a_leader_and_return_a_committed_index() {
    runtime_test(async {
        let mut cluster = Cluster::start(3).await;
        let leader = cluster.wait_leader().await;
        let acked = propose_spread(&cluster, &[leader], "r", 10).await;
        cluster.wait_applied(&ids(3), &acked).await;
        // Concurrent reads on every member share rounds and see at least
        // every write acknowledged before them.
        let committed = cluster.members[&leader].status().await.commit;
        let mut reads = Vec::new();
        for id in ids(3) {
            for _ in 0..20 {
                let node = cluster.node(id);
                reads.push(tokio::spawn(async move { node.read_index().await }));
            }
        }
        for read in reads {
            assert!(read.await.unwrap().unwrap() >= committed);
        }
        // With the leader gone, a read on an isolated member times out
        // instead of hanging; once a leader is back, reads are answered.
        let follower = ids(3).into_iter().find(|id| *id != leader).unwrap();
        let others: Vec<u64> = ids(3).into_iter().filter(|id| *id != follower).collect();
        cluster.faults.partition(&[follower], &others);
        assert!(matches!(
            cluster.node(follower).read_index().await,
            Err(Error::Timeout)
        ));
        cluster.faults.heal();
        cluster.wait_leader().await;
        assert!(cluster.node(follower).read_index().await.unwrap() >= committed);
        cluster.stop_all().await;
    });
}

#[test]
fn bad_requests_are_refused_with_typed_errors() {
    runtime_test(async {
        let mut cluster = Cluster::start(1).await;
        cluster.wait_leader().await;
        let node = cluster.node(1);
        let too_big = vec![0u8; ironcd_raft_node::DEFAULT_MAX_PROPOSAL_BYTES as usize];
        assert!(matches!(
            node.propose(too_big).await,
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            node.create_snapshot(10_000, vec![]).await,
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            node.compact_to(10_000).await,
            Err(Error::InvalidRequest(_))
        ));
        // Removing the only voter is refused by raft, on every member alike.
        let removed = node
            .propose_conf_change(ConfChangeRequest::single(ConfChange::Remove(1), vec![]))
            .await;
        assert!(
            matches!(removed, Err(Error::InvalidRequest(_))),
            "{removed:?}"
        );
        assert!(node.propose(b"still serving".to_vec()).await.is_ok());
        node.stop().await;
        assert!(matches!(
            node.propose(b"x".to_vec()).await,
            Err(Error::Stopped)
        ));
        cluster.stop_all().await;
    });
}

#[test]
fn untrusted_peer_input_is_refused_and_the_member_keeps_serving() {
    use ironcd_raft_node::pb::peer_client::PeerClient;
    use ironcd_raft_node::pb::{Envelope, MessageBatch, SnapshotChunk};

    /// Largest snapshot data the members accept in this test.
    const SNAPSHOT_LIMIT: u64 = 64 << 10;
    runtime_test(async {
        let mut cluster = Cluster::start_with(3, |c| c.max_snapshot_bytes = SNAPSHOT_LIMIT).await;
        let leader = cluster.wait_leader().await;
        let target = ids(3).into_iter().find(|id| *id != leader).unwrap();
        let url = format!("http://{}", cluster.addrs[&target]);
        let mut client = PeerClient::connect(url).await.unwrap();
        let envelope = |cluster_id, from| {
            Some(Envelope {
                cluster_id,
                from,
                to: target,
            })
        };
        let batch = |envelope, messages: Vec<Vec<u8>>| {
            tokio_stream::iter(vec![MessageBatch { envelope, messages }])
        };

        let cases = [
            (
                batch(envelope(CLUSTER_ID + 1, leader), vec![]),
                tonic::Code::FailedPrecondition,
            ),
            (
                batch(envelope(CLUSTER_ID, 99), vec![]),
                tonic::Code::PermissionDenied,
            ),
            (batch(None, vec![]), tonic::Code::InvalidArgument),
            (
                batch(envelope(CLUSTER_ID, leader), vec![vec![0xff; 9]]),
                tonic::Code::InvalidArgument,
            ),
        ];
        for (request, code) in cases {
            let status = client.messages(request).await.unwrap_err();
            assert_eq!(status.code(), code, "{status:?}");
        }
        // Snapshot streams that end early, lie about their length or
        // checksum, or grow past the limit are refused, and leave no file.
        let head = {
            use prost011::Message as _;
            let mut message = raft::eraftpb::Message::default();
            message.set_msg_type(raft::eraftpb::MessageType::MsgSnapshot);
            message.from = leader;
            message.to = target;
            message.mut_snapshot().mut_metadata().index = 1_000_000;
            message.encode_to_vec()
        };
        let first = |data: Vec<u8>| SnapshotChunk {
            envelope: envelope(CLUSTER_ID, leader),
            message: head.clone(),
            data,
            ..Default::default()
        };
        let last = |data: Vec<u8>, data_len, data_crc32c| SnapshotChunk {
            data,
            data_len,
            data_crc32c,
            last: true,
            ..Default::default()
        };
        let whole: Vec<u8> = [vec![1; 4], vec![2; 20]].concat();
        let crc = crc32c::crc32c(&whole);
        let cases = [
            (vec![first(vec![1; 4])], tonic::Code::InvalidArgument),
            (
                vec![first(vec![1; 4]), last(vec![2; 20], 10, crc)],
                tonic::Code::DataLoss,
            ),
            (
                vec![first(vec![1; 4]), last(vec![2; 20], 24, crc ^ 1)],
                tonic::Code::DataLoss,
            ),
            (
                vec![first(vec![0; SNAPSHOT_LIMIT as usize + 1])],
                tonic::Code::ResourceExhausted,
            ),
            (
                vec![SnapshotChunk {
                    envelope: envelope(CLUSTER_ID, leader),
                    ..Default::default()
                }],
                tonic::Code::InvalidArgument,
            ),
        ];
        for (chunks, code) in cases {
            let status = client
                .snapshot(tokio_stream::iter(chunks))
                .await
                .unwrap_err();
            assert_eq!(status.code(), code, "{status:?}");
        }
        let received: Vec<String> = std::fs::read_dir(cluster.dir(target).join("member/snap"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".snap.db"))
            .collect();
        assert!(received.is_empty(), "refused snapshots left {received:?}");

        let acked = propose_spread(&cluster, &ids(3), "still", 10).await;
        cluster.wait_applied(&ids(3), &acked).await;
        cluster.stop_all().await;
    });
}

/// The transport reports since when each peer's link has been up (what
/// etcd's strict reconfiguration check reads): from the first connection
/// on, unchanged while the peer stays up, none once it stops, and anew
/// from its restart.
#[test]
fn a_peer_link_is_active_from_its_connection_until_the_peer_stops() {
    runtime_test(async {
        let mut cluster = Cluster::start(3).await;
        cluster.wait_leader().await;
        let active =
            |cluster: &Cluster, peer: u64| cluster.members[&1].transport.active_since(peer);
        wait_until("links from member 1 up", Duration::from_secs(10), || {
            let up = active(&cluster, 2).is_some() && active(&cluster, 3).is_some();
            async move { up }
        })
        .await;
        assert_eq!(active(&cluster, 1), None, "no link to itself");
        assert_eq!(active(&cluster, 99), None, "no link to an unknown peer");
        let since = active(&cluster, 3).unwrap();
        assert!(since <= Instant::now());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            active(&cluster, 3),
            Some(since),
            "a steady link keeps its start"
        );

        cluster.stop_member(3).await;
        wait_until("link to member 3 down", Duration::from_secs(15), || {
            let down = active(&cluster, 3).is_none();
            async move { down }
        })
        .await;
        assert!(
            active(&cluster, 2).is_some(),
            "member 2's link is untouched"
        );

        cluster.start_member(3, &ids(3), false).await;
        wait_until("link to member 3 up again", Duration::from_secs(15), || {
            let up = active(&cluster, 3).is_some_and(|t| t > since);
            async move { up }
        })
        .await;
        cluster.stop_all().await;
    });
}
