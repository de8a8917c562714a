//! The Ready loop: the one thread that owns raft-rs's `RawNode`, the WAL and
//! the snapshot files, and decides the order of every IO.
//!
//! Each turn: take a batch of inputs (proposals, peer messages, reads,
//! ticks), then drain raft's Ready in this order —
//!
//! 1. send `messages` (the leader's appends go out *before* its own fsync:
//!    followers write in parallel with it);
//! 2. a snapshot from the leader: its file, then its WAL marker;
//! 3. `entries` and the hard state: one `Wal::save`, one fsync for every
//!    proposal of the turn (group commit); a hard state that only moves the
//!    commit index is written without an fsync (raft's `MustSync` rule);
//! 4. send `persisted_messages` (a follower's acknowledgements leave only
//!    after its fsync);
//! 5. answer read states;
//! 6. deliver `committed_entries` — the commit index covering them was made
//!    durable in step 3;
//! 7. `advance`; if the light ready moves the commit index, write the hard
//!    state (unsynced) before delivering its committed entries; send its
//!    messages; `advance_apply_to` what was delivered.
//!
//! Every delivered entry was fsynced first, and was committed; so on restart
//! a commit index that trails the applier's durable index (its record was
//! lost in a crash) is raised to it, and that index is `Config.applied`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ironcd_wal::WalIo;
use raft::eraftpb::{ConfChangeV2, Entry, EntryType, Message, MessageType, Snapshot};
use raft::{ProgressState, RawNode, StateRole};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::codec;
use crate::conf::{self, AppliedConfChange, ConfHistory, Membership};
use crate::config::Config;
use crate::disk::Disk;
use crate::error::{Error, Result};
use crate::logger::raft_logger;
use crate::node::{
    Apply, Committed, CommittedKind, Control, Input, PeerProgress, ReplicationState, Role,
    SnapshotData, SnapshotPayload, Status, Wiring,
};
use crate::storage::LogStore;
use crate::transport::{Inbox, Transport};

/// Every entry proposed here carries `[session u64 LE][seq u64 LE]` in its
/// context, so the member that proposed it recognises it when it commits —
/// whichever member led. The session is random per start: an entry from
/// before a restart never resolves a new proposal.
pub(crate) const PROPOSAL_ID_BYTES: u64 = 16;
/// Inputs handled before raft's Ready is drained again.
const MAX_INPUTS_PER_TURN: usize = 1024;

struct Pending {
    reply: oneshot::Sender<Result<u64>>,
    conf_change: bool,
}

/// ReadIndex requests: callers wait in `waiting` until the one request in
/// flight (`inflight`) is answered; then they all go out as the next one.
struct Reads {
    next_ctx: u64,
    waiting: Vec<oneshot::Sender<Result<u64>>>,
    inflight: Option<InflightRead>,
    retry_after: Duration,
}

struct InflightRead {
    /// Every context this batch was sent under (one more per retry).
    ctxs: Vec<u64>,
    waiters: Vec<oneshot::Sender<Result<u64>>>,
    retry_at: Instant,
}

pub(crate) struct Driver {
    config: Config,
    raw: RawNode<LogStore>,
    disk: Disk,
    transport: Arc<dyn Transport>,
    apply_tx: mpsc::Sender<Apply>,
    inbox: mpsc::Receiver<Input>,
    session: u64,
    proposals: HashMap<u64, Pending>,
    reads: Reads,
    conf: ConfHistory,
    /// Last index delivered to the applier.
    applied: u64,
    /// What the applier reported durable (raised by the handle).
    durable_applied: Arc<AtomicU64>,
    /// `applied`, published for the handle.
    delivered: Arc<AtomicU64>,
    control: mpsc::Receiver<Control>,
    /// A `SnapshotDue` was sent and no snapshot has answered it yet.
    snapshot_requested: bool,
    /// Term in which this leader last proposed leaving a joint config.
    leave_joint_term: u64,
    /// Delivered before anything else (a snapshot the applier lacks).
    startup: Option<SnapshotData>,
    /// Whether the applier was last told this member leads.
    leading: bool,
    /// The leader raft last reported (0: none), to count changes.
    seen_leader: u64,
}

impl Driver {
    pub(crate) fn open(
        config: Config,
        dir: &Path,
        io: Arc<dyn WalIo>,
        transport: Arc<dyn Transport>,
        applied: u64,
        wiring: Wiring,
    ) -> Result<Driver> {
        let recovered = Disk::open(io, dir, &config)?;
        let snapshot_meta = recovered.snapshot.get_metadata().clone();
        let mut store = LogStore::new(recovered.snapshot, recovered.hard_state);
        store.append(&recovered.entries);
        let snap_dir = dir.join("snap");
        let mut startup = None;
        let mut applied = applied;
        if applied < snapshot_meta.index {
            // Installed but not yet restored by the applier: its data file
            // (if it came from a peer) is still there.
            startup = Some(snapshot_data(&snap_dir, store.snapshot()));
            applied = snapshot_meta.index;
        }
        let pending = startup.as_ref().map(|s| s.index);
        let removed = crate::disk::remove_stale_snapshot_data(&snap_dir, pending)?;
        if removed > 0 {
            tracing::info!(dir = %dir.display(), removed, "removed stale received snapshot data");
        }
        let commit = store.hard_state().commit;
        if applied > commit {
            // A commit index alone is saved unsynced, so a crash can lose the
            // newest one; what the applier applied was committed, and its
            // entries were synced before they were delivered.
            if applied > store.last_index() {
                return Err(Error::Corrupt {
                    dir: dir.to_path_buf(),
                    reason: format!(
                        "the applier's durable index {applied} is past the log's last entry {}",
                        store.last_index()
                    ),
                });
            }
            store.set_commit(applied);
        }
        let history = conf::replay(
            snapshot_meta.index,
            snapshot_meta.get_conf_state(),
            store.entries_between(snapshot_meta.index + 1, applied + 1),
            applied,
        )
        .map_err(|reason| Error::Corrupt {
            dir: dir.to_path_buf(),
            reason,
        })?;
        store.set_conf_state(history.latest().clone());
        let raft_config = config.raft_config(applied);
        raft_config.validate()?;
        let logger = raft_logger(config.id);
        let mut raw = RawNode::new(&raft_config, store, &logger)?;
        let alone =
            history.latest().voters == [config.id] && history.latest().voters_outgoing.is_empty();
        if alone {
            // Nobody to disturb and nobody to wait for.
            raw.campaign()?;
        }
        transport.attach(Inbox {
            id: config.id,
            tx: wiring.tx,
            snapshot_dir: snap_dir,
            max_snapshot_bytes: config.max_snapshot_bytes,
        });
        wiring.durable_applied.store(applied, Ordering::Release);
        wiring.delivered.store(applied, Ordering::Release);
        tracing::info!(id = config.id, dir = %dir.display(), applied, commit, snapshot = snapshot_meta.index, membership = ?Membership::from(history.latest()), "raft node started");
        let retry_after =
            Duration::from_millis((config.election_timeout_ms() / 2).max(config.tick_ms));
        Ok(Driver {
            raw,
            disk: recovered.disk,
            transport,
            apply_tx: wiring.apply_tx,
            inbox: wiring.inbox,
            control: wiring.control,
            session: rand::random(),
            proposals: HashMap::new(),
            reads: Reads {
                next_ctx: 1,
                waiting: Vec::new(),
                inflight: None,
                retry_after,
            },
            conf: history,
            applied,
            durable_applied: wiring.durable_applied,
            delivered: wiring.delivered,
            snapshot_requested: false,
            leave_joint_term: 0,
            startup,
            leading: false,
            seen_leader: 0,
            config,
        })
    }

    /// Runs the loop on the calling thread until stopped; panics on a
    /// fatal error (see [`Driver::fatal`]).
    pub(crate) fn run(self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("building the raft thread's runtime");
        runtime.block_on(self.run_loop());
    }

    async fn run_loop(mut self) {
        if let Some(snapshot) = self.startup.take() {
            self.deliver(Apply::Snapshot(snapshot)).await;
        }
        let mut ticker = tokio::time::interval(Duration::from_millis(self.config.tick_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Ticks first: a busy inbox must not starve elections and
            // heartbeats.
            let stop = tokio::select! {
                biased;
                _ = ticker.tick() => {
                    self.raw.tick();
                    self.housekeeping();
                    false
                }
                Some(control) = self.control.recv() => {
                    self.handle_control(control);
                    false
                }
                input = self.inbox.recv() => match input {
                    Some(input) => self.handle_batch(input),
                    None => true,
                },
            };
            if stop {
                break;
            }
            if let Err(e) = self.drain_ready().await {
                self.fatal(&e);
            }
        }
        tracing::info!(id = self.config.id, "raft node stopped");
    }

    /// etcd's `lg.Fatal` on a failed WAL save: a Ready whose entries or
    /// hard state could not be made durable (a full disk, a failed fsync,
    /// which also poisons the WAL), or a log that cannot be right. Raft
    /// cannot go on without them, and a member whose raft thread merely
    /// ended would go on serving half alive, answering every write with
    /// `Stopped` until someone stopped it (and then exit 0). So the thread
    /// panics, which ends the `ironcd` process (its panic hook aborts); a
    /// restart recovers from the WAL, where nothing unsynced was
    /// acknowledged.
    fn fatal(&self, e: &Error) -> ! {
        tracing::error!(id = self.config.id, dir = %self.disk.dir().display(), error = %e, "raft node stopped on a fatal error");
        panic!(
            "raft node {:x} stopped on a fatal error: {e}",
            self.config.id
        );
    }

    fn handle_batch(&mut self, first: Input) -> bool {
        if self.handle(first) {
            return true;
        }
        for _ in 0..MAX_INPUTS_PER_TURN {
            match self.inbox.try_recv() {
                Ok(input) => {
                    if self.handle(input) {
                        return true;
                    }
                }
                Err(_) => break,
            }
        }
        false
    }

    /// Handles one input; true means stop.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Propose { seq, data, reply } => {
                let proposed = self.raw.propose(session_tag(self.session, seq), data);
                self.track(seq, false, proposed, reply);
            }
            Input::ProposeConfChange {
                seq,
                change,
                context,
                reply,
            } => self.propose_conf_change(seq, change, context, reply),
            Input::ReadIndex(reply) => self.reads.waiting.push(reply),
            Input::Step(message) => self.step(*message),
            Input::Unreachable(peer) => self.raw.report_unreachable(peer),
            Input::SnapshotStatus(peer, status) => self.raw.report_snapshot(peer, status),
            Input::TransferLeader(to) => self.raw.transfer_leader(to),
            Input::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Input::Stop => return true,
        }
        false
    }

    fn handle_control(&mut self, control: Control) {
        match control {
            Control::CreateSnapshot { index, data, reply } => {
                // Answered either way; raft asks again if it still needs one.
                self.snapshot_requested = false;
                let _ = reply.send(self.create_snapshot(index, data));
            }
            Control::CompactTo { index, reply } => {
                let _ = reply.send(self.compact_to(index));
            }
        }
    }

    /// The applier's durable index, as far as it has been delivered.
    fn durable_applied(&self) -> u64 {
        self.durable_applied
            .load(Ordering::Acquire)
            .min(self.applied)
    }

    /// Waits for the proposal to commit, or answers raft's refusal now.
    fn track(
        &mut self,
        seq: u64,
        conf_change: bool,
        proposed: raft::Result<()>,
        reply: oneshot::Sender<Result<u64>>,
    ) {
        match proposed {
            Ok(()) => {
                self.proposals.insert(seq, Pending { reply, conf_change });
            }
            Err(e) => {
                let _ = reply.send(Err(self.refusal(e)));
            }
        }
    }

    fn refusal(&self, error: raft::Error) -> Error {
        match error {
            raft::Error::ProposalDropped if self.raw.raft.leader_id == 0 => Error::NoLeader,
            raft::Error::ProposalDropped => Error::Dropped,
            other => Error::Raft(other),
        }
    }

    fn propose_conf_change(
        &mut self,
        seq: u64,
        change: ConfChangeV2,
        context: Vec<u8>,
        reply: oneshot::Sender<Result<u64>>,
    ) {
        let raft = &self.raw.raft;
        // raft-rs turns a second pending change into an empty entry, which
        // would never answer the caller: refuse it here, where it is known.
        if raft.state == StateRole::Leader && raft.pending_conf_index > raft.raft_log.applied {
            let _ = reply.send(Err(Error::InvalidRequest(
                "a membership change is already in progress".into(),
            )));
            return;
        }
        let mut ctx = session_tag(self.session, seq);
        ctx.extend_from_slice(&context);
        let proposed = self.raw.propose_conf_change(ctx, change);
        self.track(seq, true, proposed, reply);
    }

    fn step(&mut self, message: Message) {
        // A heartbeat may not commit past this log: raft-rs would abort.
        // A correct leader never sends one; refuse it rather than die.
        if message.get_msg_type() == MessageType::MsgHeartbeat
            && message.commit > self.raw.raft.raft_log.last_index()
        {
            tracing::warn!(
                from = message.from,
                commit = message.commit,
                "refused a heartbeat committing past the log"
            );
            return;
        }
        if let Err(e) = self.raw.step(message) {
            tracing::debug!(error = %e, "raft refused a peer message");
        }
    }

    /// Per tick: forget abandoned proposals, retry reads, leave a joint
    /// configuration left behind.
    fn housekeeping(&mut self) {
        self.proposals
            .retain(|_, pending| !pending.reply.is_closed());
        self.reads.waiting.retain(|reply| !reply.is_closed());
        if let Some(inflight) = &mut self.reads.inflight {
            inflight.waiters.retain(|reply| !reply.is_closed());
            if inflight.waiters.is_empty() {
                self.reads.inflight = None;
            } else if Instant::now() >= inflight.retry_at {
                // Raft drops a read with no leader, or before the leader
                // has committed in its term: ask again.
                let ctx = send_read_index(&mut self.raw, self.session, &mut self.reads.next_ctx);
                inflight.ctxs.push(ctx);
                inflight.retry_at = Instant::now() + self.reads.retry_after;
            }
        }
        self.leave_joint_if_stuck();
    }

    fn leave_joint_if_stuck(&mut self) {
        let raft = &self.raw.raft;
        let joint = !self.conf.latest().voters_outgoing.is_empty();
        if !joint || raft.state != StateRole::Leader || self.leave_joint_term == raft.term {
            return;
        }
        if raft.pending_conf_index > raft.raft_log.applied {
            return;
        }
        self.leave_joint_term = raft.term;
        tracing::info!(
            id = self.config.id,
            term = raft.term,
            "leaving a joint configuration"
        );
        if let Err(e) = self
            .raw
            .propose_conf_change(Vec::new(), ConfChangeV2::default())
        {
            tracing::warn!(error = %e, "proposing to leave the joint configuration failed");
        }
    }

    fn issue_reads(&mut self) {
        if self.reads.inflight.is_some() || self.reads.waiting.is_empty() {
            return;
        }
        let ctx = send_read_index(&mut self.raw, self.session, &mut self.reads.next_ctx);
        self.reads.inflight = Some(InflightRead {
            ctxs: vec![ctx],
            waiters: std::mem::take(&mut self.reads.waiting),
            retry_at: Instant::now() + self.reads.retry_after,
        });
    }

    fn answer_reads(&mut self, states: Vec<raft::ReadState>) {
        for state in states {
            let Some(ctx) = read_ctx_seq(self.session, &state.request_ctx) else {
                continue;
            };
            if self
                .reads
                .inflight
                .as_ref()
                .is_some_and(|r| r.ctxs.contains(&ctx))
            {
                let inflight = self.reads.inflight.take().expect("checked");
                for waiter in inflight.waiters {
                    let _ = waiter.send(Ok(state.index));
                }
            }
        }
    }

    async fn drain_ready(&mut self) -> Result<()> {
        loop {
            self.issue_reads();
            if !self.raw.has_ready() {
                break;
            }
            self.on_ready().await?;
        }
        if self.raw.store().take_snapshot_wanted() {
            // A follower needs a snapshot newer than the stored one.
            self.request_snapshot().await;
        }
        Ok(())
    }

    async fn on_ready(&mut self) -> Result<()> {
        let mut ready = self.raw.ready();
        if let Some(ss) = ready.ss() {
            if ss.leader_id != 0 && ss.leader_id != self.seen_leader {
                crate::metrics::LEADER_CHANGES.inc();
            }
            self.seen_leader = ss.leader_id;
            let leading = ss.raft_state == StateRole::Leader;
            if leading != self.leading {
                self.leading = leading;
                self.deliver(Apply::Leadership(leading)).await;
            }
        }
        let messages = ready.take_messages();
        if !messages.is_empty() {
            // etcd's points, named as its gofail ones: `messages` are what
            // raft-rs lets go before the fsync, a leader's.
            fail::fail_point!("raftBeforeLeaderSend");
        }
        self.send(messages);
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.install_snapshot(snapshot).await?;
        }
        let entries = ready.take_entries();
        if !entries.is_empty() || ready.hs().is_some() {
            let hard_state = ready
                .hs()
                .cloned()
                .unwrap_or_else(|| self.raw.store().hard_state().clone());
            fail::fail_point!("raftBeforeSave");
            self.disk.save(&hard_state, &entries)?;
            fail::fail_point!("raftAfterSave");
            let store = self.raw.mut_store();
            store.append(&entries);
            store.set_hard_state(hard_state);
        }
        let persisted = ready.take_persisted_messages();
        if !persisted.is_empty() {
            // A follower's (or candidate's) messages: they wait for the fsync.
            fail::fail_point!("raftBeforeFollowerSend");
        }
        self.send(persisted);
        self.answer_reads(ready.take_read_states());
        self.apply(ready.take_committed_entries()).await?;
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            let store = self.raw.mut_store();
            store.set_commit(commit);
            let hard_state = store.hard_state().clone();
            self.disk.save(&hard_state, &[])?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries()).await?;
        self.raw.advance_apply_to(self.applied);
        Ok(())
    }

    fn send(&self, messages: Vec<Message>) {
        if !messages.is_empty() {
            self.transport.send(messages);
        }
    }

    async fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        let meta = snapshot.get_metadata();
        tracing::info!(
            id = self.config.id,
            index = meta.index,
            term = meta.term,
            "installing snapshot from the leader"
        );
        fail::fail_point!("raftBeforeSaveSnap");
        self.disk.save_snapshot(&snapshot)?;
        fail::fail_point!("raftAfterSaveSnap");
        self.conf = ConfHistory::new(meta.index, meta.get_conf_state().clone());
        self.applied = meta.index;
        self.snapshot_requested = false;
        let data = snapshot_data(&self.disk.dir().join("snap"), &snapshot);
        fail::fail_point!("raftBeforeApplySnap");
        self.raw.mut_store().apply_snapshot(snapshot);
        fail::fail_point!("raftAfterApplySnap");
        self.deliver(Apply::Snapshot(data)).await;
        Ok(())
    }

    async fn apply(&mut self, entries: Vec<Entry>) -> Result<()> {
        let mut batch = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            batch.push(self.apply_one(entry)?);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.deliver(Apply::Entries(batch)).await;
        let since_snapshot = self.applied - self.raw.store().snapshot_metadata().index;
        if since_snapshot >= self.config.snapshot_count {
            self.request_snapshot().await;
        }
        Ok(())
    }

    fn apply_one(&mut self, mut entry: Entry) -> Result<Committed> {
        let (owner, app_context) = self.split_context(&entry.context);
        let kind = match entry.get_entry_type() {
            EntryType::EntryNormal => {
                self.resolve(owner, false, Ok(entry.index));
                CommittedKind::Normal(std::mem::take(&mut entry.data))
            }
            EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                let cc = codec::conf_change_of(&entry).map_err(|reason| Error::Corrupt {
                    dir: self.disk.dir().to_path_buf(),
                    reason: format!("committed entry {}: {reason}", entry.index),
                })?;
                let applied = match self.raw.apply_conf_change(&cc) {
                    Ok(cs) => {
                        self.raw.mut_store().set_conf_state(cs.clone());
                        self.conf.push(entry.index, cs.clone());
                        tracing::info!(id = self.config.id, index = entry.index, membership = ?Membership::from(&cs), "membership changed");
                        AppliedConfChange::new(&cc, app_context, &cs, None)
                    }
                    Err(e) => {
                        tracing::warn!(id = self.config.id, index = entry.index, error = %e, "raft refused a membership change");
                        AppliedConfChange::new(
                            &cc,
                            app_context,
                            self.conf.latest(),
                            Some(e.to_string()),
                        )
                    }
                };
                let result = match &applied.refused {
                    None => Ok(entry.index),
                    Some(reason) => Err(Error::InvalidRequest(reason.clone())),
                };
                self.resolve(owner, true, result);
                CommittedKind::ConfChange(applied)
            }
        };
        self.applied = entry.index;
        Ok(Committed {
            index: entry.index,
            term: entry.term,
            kind,
        })
    }

    /// The proposal sequence number if this member proposed the entry, and
    /// the caller's part of the context.
    fn split_context(&self, context: &[u8]) -> (Option<u64>, Vec<u8>) {
        match split_session_tag(self.session, context) {
            Some((seq, rest)) => (seq, rest.to_vec()),
            None => (None, Vec::new()),
        }
    }

    fn resolve(&mut self, owner: Option<u64>, conf_change: bool, result: Result<u64>) {
        let Some(pending) = owner.and_then(|seq| self.proposals.remove(&seq)) else {
            return;
        };
        // raft-rs replaces a conf change it will not take by an empty
        // normal entry (which carries no context, so this is defensive).
        let result = if pending.conf_change == conf_change {
            result
        } else {
            Err(Error::Dropped)
        };
        let _ = pending.reply.send(result);
    }

    /// Asks the applier for a snapshot at what it has received, unless a
    /// request is still unanswered.
    async fn request_snapshot(&mut self) {
        if !self.snapshot_requested {
            self.snapshot_requested = true;
            self.deliver(Apply::SnapshotDue {
                index: self.applied,
            })
            .await;
        }
    }

    /// Waits for room in the apply queue, serving the applier's control
    /// requests meanwhile (an applier waiting on one is not draining).
    async fn deliver(&mut self, item: Apply) {
        self.delivered.fetch_max(self.applied, Ordering::AcqRel);
        let apply_tx = self.apply_tx.clone();
        loop {
            tokio::select! {
                permit = apply_tx.reserve() => {
                    // With the applier gone nobody waits for entries; raft
                    // goes on.
                    if let Ok(permit) = permit {
                        permit.send(item);
                    }
                    return;
                }
                Some(control) = self.control.recv() => self.handle_control(control),
            }
        }
    }

    fn create_snapshot(&mut self, index: u64, data: Vec<u8>) -> Result<()> {
        let snapshot_index = self.raw.store().snapshot_metadata().index;
        if index <= snapshot_index {
            return Err(Error::InvalidRequest(format!(
                "a snapshot at {index} is not newer than the one at {snapshot_index}"
            )));
        }
        let durable_applied = self.durable_applied();
        if index > durable_applied {
            return Err(Error::InvalidRequest(format!(
                "a snapshot at {index} is past the durable applied index {durable_applied}"
            )));
        }
        let conf_state = self.conf.at(index).clone();
        let store = self.raw.mut_store();
        store.set_snapshot(index, conf_state, data);
        self.disk.save_snapshot(store.snapshot())?;
        let compact = index.saturating_sub(self.config.snapshot_catchup_entries);
        self.raw.mut_store().compact(compact);
        self.disk.release_to(index)?;
        self.conf.prune_to(index);
        tracing::info!(
            id = self.config.id,
            index,
            compacted_to = compact,
            "snapshot saved"
        );
        Ok(())
    }

    fn compact_to(&mut self, index: u64) -> Result<()> {
        let snapshot_index = self.raw.store().snapshot_metadata().index;
        if index > snapshot_index {
            return Err(Error::InvalidRequest(format!(
                "compaction to {index} passes the snapshot at {snapshot_index}"
            )));
        }
        self.raw.mut_store().compact(index);
        Ok(())
    }

    fn status(&self) -> Status {
        let raft = &self.raw.raft;
        let store = self.raw.store();
        let role = match raft.state {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        };
        let mut progress: Vec<PeerProgress> = if role == Role::Leader {
            raft.prs()
                .iter()
                .map(|(&id, pr)| PeerProgress {
                    id,
                    matched: pr.matched,
                    next_index: pr.next_idx,
                    state: match pr.state {
                        ProgressState::Probe => ReplicationState::Probe,
                        ProgressState::Replicate => ReplicationState::Replicate,
                        ProgressState::Snapshot => ReplicationState::Snapshot,
                    },
                    recent_active: pr.recent_active,
                })
                .collect()
        } else {
            Vec::new()
        };
        progress.sort_unstable_by_key(|p| p.id);
        Status {
            id: self.config.id,
            leader: raft.leader_id,
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: self.applied,
            durable_applied: self.durable_applied(),
            snapshot_index: store.snapshot_metadata().index,
            first_index: store.first_index(),
            last_index: raft.raft_log.last_index(),
            role,
            membership: Membership::from(self.conf.latest()),
            progress,
        }
    }
}

/// Starts one ReadIndex round under a fresh context; returns the context.
/// Asks raft for a read index under the context `[session u64 LE][seq u64
/// LE]`; returns `seq`. The leader keeps one pending read per context and
/// drops a request whose context is already pending, so contexts must not
/// repeat across members: a bare counter (every member counting from 1)
/// made reads from different members collide and wait for the retry.
fn send_read_index(raw: &mut RawNode<LogStore>, session: u64, next_ctx: &mut u64) -> u64 {
    let seq = *next_ctx;
    *next_ctx += 1;
    raw.read_index(session_tag(session, seq));
    seq
}

/// `[session u64 LE][seq u64 LE]`: what marks this member's proposals (at
/// the front of an entry's context) and its read-index requests.
fn session_tag(session: u64, seq: u64) -> Vec<u8> {
    let mut tag = Vec::with_capacity(PROPOSAL_ID_BYTES as usize);
    tag.extend_from_slice(&session.to_le_bytes());
    tag.extend_from_slice(&seq.to_le_bytes());
    tag
}

/// Splits a session tag off the front of `bytes`: its `seq` if this
/// session made it (`None` if another did), and what follows. `None` if
/// `bytes` is too short to hold a tag.
fn split_session_tag(session: u64, bytes: &[u8]) -> Option<(Option<u64>, &[u8])> {
    let (tag, rest) = bytes.split_at_checked(PROPOSAL_ID_BYTES as usize)?;
    let (head, seq) = tag.split_at(8);
    let head = u64::from_le_bytes(head.try_into().expect("8 bytes"));
    let seq = u64::from_le_bytes(seq.try_into().expect("8 bytes"));
    Some(((head == session).then_some(seq), rest))
}

/// The sequence number of a read context this member sent, if it is one.
fn read_ctx_seq(session: u64, ctx: &[u8]) -> Option<u64> {
    split_session_tag(session, ctx).and_then(|(seq, _)| seq)
}

/// What the applier is told of `snapshot`: its data inline if it has any
/// (this member's own, made with data), else the file a peer's data was
/// received into, if there is one.
fn snapshot_data(snap_dir: &Path, snapshot: &Snapshot) -> SnapshotData {
    let meta = snapshot.get_metadata();
    let file = crate::disk::snapshot_data_path(snap_dir, meta.index);
    let payload = if !snapshot.data.is_empty() {
        SnapshotPayload::Inline(snapshot.data.clone())
    } else if file.exists() {
        SnapshotPayload::File(file)
    } else {
        SnapshotPayload::None
    };
    SnapshotData {
        index: meta.index,
        term: meta.term,
        membership: Membership::from(meta.get_conf_state()),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_contexts_differ_across_members_and_are_recognised_only_at_home() {
        let (a, b) = (0x1111, 0x2222);
        // Both members' first read: the contexts must differ, or the leader
        // drops the second as a duplicate.
        assert_ne!(session_tag(a, 1), session_tag(b, 1));
        assert_eq!(read_ctx_seq(a, &session_tag(a, 7)), Some(7));
        assert_eq!(read_ctx_seq(a, &session_tag(b, 7)), None);
        assert_eq!(read_ctx_seq(a, &7u64.to_le_bytes()), None);
        assert_eq!(read_ctx_seq(a, &[]), None);
    }
}
