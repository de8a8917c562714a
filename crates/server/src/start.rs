//! Starting a member: identity, storage, raft, the applier, the peer and
//! client listeners, and publishing this member's name and client URLs.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use ironcd_api::{Limits, Services};
use ironcd_backend::{Backend, BackendConfig};
use ironcd_proto::etcdserverpb::cluster_client::ClusterClient;
use ironcd_proto::etcdserverpb::cluster_server::ClusterServer;
use ironcd_proto::etcdserverpb::{
    ClusterMemberAttrSetRequest, InternalRaftRequest, Member, MemberAttributes, MemberListRequest,
};
use ironcd_raft_node::{Config, GrpcTransport, RaftNode, TransportConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::apply::Applier;
use crate::config::{ClusterState, ServerConfig};
use crate::error::{Error, Result};
use crate::listen::{serve, ConnLimits, ServeListener};
use crate::members::{cluster_id, initial_members};
use crate::metrics::Metrics;
use crate::server::{EtcdServer, Inner};
use crate::state::State;
use ironcd_tls::Mode;

/// Who this member is, fixed when its data directory is created
/// (`member/identity`, through [`crate::codec`] at [`IDENTITY_VERSION`]).
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
struct Identity {
    id: u64,
    cluster_id: u64,
    /// It joined a running cluster (`--initial-cluster-state existing`).
    join: bool,
    /// The founding voters (empty for a member that joined).
    voters: Vec<u64>,
}

/// The identity file's record version.
const IDENTITY_VERSION: u8 = 1;

impl Identity {
    fn path(member_dir: &Path) -> std::path::PathBuf {
        member_dir.join("identity")
    }

    fn load(member_dir: &Path) -> Result<Option<Identity>> {
        let bytes = match std::fs::read(Self::path(member_dir)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        crate::codec::decode(IDENTITY_VERSION, &bytes, "identity file").map(Some)
    }

    fn save(&self, member_dir: &Path) -> Result<()> {
        let tmp = member_dir.join("identity.tmp");
        std::fs::write(&tmp, crate::codec::encode(IDENTITY_VERSION, self))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, Self::path(member_dir))?;
        std::fs::File::open(member_dir)?.sync_all()?;
        Ok(())
    }
}

fn sorted(urls: &[String]) -> Vec<String> {
    let mut v = urls.to_vec();
    v.sort();
    v
}

/// A new cluster: every founding member computes the same ids.
fn bootstrap_new(cfg: &ServerConfig) -> Result<(Identity, Vec<Member>)> {
    let members = initial_members(&cfg.initial_cluster, &cfg.initial_cluster_token);
    let me = members.iter().find(|m| m.name == cfg.name).ok_or_else(|| {
        Error::Config(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        ))
    })?;
    if sorted(&me.peer_ur_ls) != sorted(&cfg.initial_advertise_peer_urls) {
        return Err(Error::Config(format!(
            "--initial-cluster has {}={} but --initial-advertise-peer-urls has {}",
            cfg.name,
            me.peer_ur_ls.join(","),
            cfg.initial_advertise_peer_urls.join(",")
        )));
    }
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let identity = Identity {
        id: me.id,
        cluster_id: cluster_id(&ids),
        join: false,
        voters: ids,
    };
    Ok((identity, members))
}

/// Joining a running cluster: ask a peer for the member list, find the
/// record `member add` made for these peer URLs.
async fn bootstrap_existing(
    cfg: &ServerConfig,
    dialer: &ironcd_tls::Dialer,
) -> Result<(Identity, Vec<Member>)> {
    let mine = sorted(&cfg.initial_advertise_peer_urls);
    let mut last_error = String::from("no other member in --initial-cluster");
    for m in cfg.initial_cluster.iter().filter(|m| m.name != cfg.name) {
        for url in &m.peer_urls {
            let answer = async {
                let mut client = ClusterClient::new(dialer.connect(url, |e| e).await?);
                // Linearizable: the `member add` that named this member
                // was committed before it answered, so every peer's
                // linearizable list holds it, not only the one that
                // served the add.
                client
                    .member_list(MemberListRequest { linearizable: true })
                    .await
                    .map_err(|e| e.to_string())
            };
            let resp = match tokio::time::timeout(Duration::from_secs(5), answer).await {
                Ok(Ok(resp)) => resp.into_inner(),
                Ok(Err(e)) => {
                    last_error = format!("{url}: {e}");
                    continue;
                }
                Err(_) => {
                    last_error = format!("{url}: timed out");
                    continue;
                }
            };
            let cluster = resp.header.map(|h| h.cluster_id).unwrap_or(0);
            let Some(me) = resp.members.iter().find(|m| sorted(&m.peer_ur_ls) == mine) else {
                last_error = format!(
                    "this member's peer URLs {} were not added to the cluster (run `member add` first)",
                    mine.join(",")
                );
                continue;
            };
            let identity = Identity {
                id: me.id,
                cluster_id: cluster,
                join: true,
                voters: Vec::new(),
            };
            return Ok((identity, resp.members));
        }
    }
    Err(Error::Config(format!(
        "could not join the cluster: {last_error}"
    )))
}

/// `host:port` of a URL, for binding.
pub fn host_port(url: &str) -> Result<String> {
    crate::flags::listen_authority(url).map_err(Error::Config)
}

/// The lessor as the flags set it: etcd's minimum TTL from the election
/// timeout, checkpoints when enabled.
fn lessor(cfg: &ServerConfig) -> Result<ironcd_lease::Lessor> {
    let lc = ironcd_lease::LessorConfig {
        min_ttl_s: ironcd_lease::LessorConfig::min_ttl_s_for(
            (cfg.election_ms / cfg.heartbeat_ms).max(2),
            cfg.heartbeat_ms,
        ),
        checkpointing: cfg.lease_checkpoint,
        checkpoint_interval: Duration::from_millis(cfg.lease_checkpoint_interval_ms),
        ..ironcd_lease::LessorConfig::default()
    };
    lc.validate().map_err(Error::Config)?;
    Ok(ironcd_lease::Lessor::new(
        lc,
        Arc::new(ironcd_lease::MonotonicClock::new()),
    ))
}

fn raft_config(cfg: &ServerConfig, identity: &Identity) -> Config {
    let mut rc = Config::new(identity.id, identity.cluster_id);
    rc.initial_voters = identity.voters.clone();
    rc.join = identity.join;
    rc.tick_ms = cfg.heartbeat_ms;
    rc.heartbeat_ticks = 1;
    rc.election_ticks = (cfg.election_ms / cfg.heartbeat_ms).max(2);
    rc.snapshot_count = cfg.snapshot_count;
    rc.snapshot_catchup_entries = cfg.snapshot_catchup_entries;
    rc.max_snapshot_bytes = crate::config::snapshot_limit_bytes(cfg.quota_backend_bytes);
    rc.request_timeout_ms = 5_000 + 2 * cfg.election_ms;
    rc.max_proposal_bytes = rc.max_proposal_bytes.max(cfg.max_request_bytes + 4096);
    rc.wal.max_record_bytes = rc.wal.max_record_bytes.max(rc.max_proposal_bytes + 4096);
    rc
}

/// A started member; dropping it does not stop it: call [`Running::stop`].
pub struct Running {
    /// The server (for in-process use).
    pub server: EtcdServer,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    applier: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops listening, stops raft, and waits for the applier to finish.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        self.server.inner.node.stop().await;
        self.server.inner.transport.close();
        if let Some(applier) = self.applier.take() {
            let _ = tokio::task::spawn_blocking(move || applier.join()).await;
        }
        let store = self.server.state().store();
        if let Err(e) = store.backend().force_commit() {
            tracing::error!(error = %e, "final backend commit failed");
        }
    }
}

/// Starts a member from `cfg`. Must run inside a multi-thread tokio runtime.
pub async fn start(cfg: ServerConfig) -> Result<Running> {
    cfg.validate()?;
    if cfg.force_new_cluster {
        // Starting as an ordinary member instead would leave a cluster that
        // lost its quorum without one: refuse rather than ignore.
        return Err(Error::Config(
            "--force-new-cluster is not yet supported by ironcd".into(),
        ));
    }
    let member_dir = cfg.member_dir();
    std::fs::create_dir_all(&member_dir)?;
    let tls = crate::tls::resolve(&cfg)?;
    let (identity, founders) = match Identity::load(&member_dir)? {
        Some(identity) => (identity, Vec::new()),
        None => {
            let (identity, founders) = match cfg.initial_cluster_state {
                ClusterState::New => bootstrap_new(&cfg)?,
                ClusterState::Existing => bootstrap_existing(&cfg, &tls.peer_dialer).await?,
            };
            identity.save(&member_dir)?;
            (identity, founders)
        }
    };
    tracing::info!(
        name = %cfg.name, member_id = %format!("{:x}", identity.id),
        cluster_id = %format!("{:x}", identity.cluster_id), data_dir = %cfg.data_dir.display(),
        "starting ironcd member"
    );
    let (state, consistent_index) =
        State::open(&member_dir, BackendConfig::default(), lessor(&cfg)?)?;
    let history = Arc::new(crate::watch_api::StateHistory(Arc::downgrade(&state)));
    let watchable =
        ironcd_watch::WatchableStore::new(history, ironcd_watch::WatchConfig::default());
    state.set_observer(watchable.clone());
    if state.members.read().is_removed(identity.id) {
        return Err(Error::DataDir(
            "the member has been permanently removed from the cluster".into(),
        ));
    }
    if state.members.read().is_empty() {
        let store = state.store();
        {
            let mut tx = store.backend().batch_tx();
            let mut members = state.members.write();
            for m in founders {
                members.upsert(&mut tx, m);
            }
        }
        // Durable before the member runs: the identity file is already
        // written, so a member killed before the next batch commit would
        // restart without its founding members and never publish itself.
        store.backend().force_commit()?;
    }
    // The transport skips this member's own entry.
    let peers: Vec<(u64, String)> = state
        .members
        .read()
        .list()
        .into_iter()
        .filter_map(|m| m.peer_ur_ls.first().map(|u| (m.id, u.clone())))
        .collect();
    let transport_config = TransportConfig::default();
    transport_config.validate()?;
    let transport = Arc::new(GrpcTransport::new(
        identity.id,
        identity.cluster_id,
        peers,
        transport_config,
    ));
    transport.set_dialer(tls.peer_dialer.clone());
    let source_state = state.clone();
    transport.set_snapshot_source(Arc::new(move |out| {
        source_state
            .write_backend_snapshot(&mut |_| Ok(()), out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }));
    let rc = raft_config(&cfg, &identity);
    let (node, stream) =
        RaftNode::start(rc.clone(), &member_dir, transport.clone(), consistent_index)?;
    let applier = Applier {
        state: state.clone(),
        node: node.clone(),
        peers: transport.clone(),
        consistent_index,
        lease_extend: Duration::from_millis(cfg.election_ms),
    };
    let applier = std::thread::Builder::new()
        .name("applier".into())
        .spawn(move || applier.run(stream))?;
    tracing::info!(
        cluster_version = "3.5",
        "enabled capabilities for version 3.5"
    );
    let server = EtcdServer {
        inner: Arc::new(Inner {
            id: identity.id,
            cluster_id: identity.cluster_id,
            node,
            transport,
            state,
            metrics: Metrics::default(),
            next_request: AtomicU64::new(rand::random::<u64>() & !0xff_ffff_ffff),
            request_timeout: Duration::from_millis(rc.request_timeout_ms),
            peer_dialer: tls.peer_dialer.clone(),
            watchable,
            lease_forward: parking_lot::Mutex::new(None),
            cfg,
        }),
    };
    let (shutdown, _) = watch::channel(false);
    let mut running = Running {
        server: server.clone(),
        shutdown,
        tasks: Vec::new(),
        applier: Some(applier),
    };
    if let Err(e) = listen(&mut running, &tls).await {
        running.stop().await;
        return Err(e);
    }
    let mode = server.inner.cfg.auto_compaction;
    let stop = running.shutdown.subscribe();
    running.tasks.push(tokio::spawn(crate::compactor::run(
        server.clone(),
        mode,
        stop,
    )));
    running
        .tasks
        .push(tokio::spawn(refresh_db_size(server.clone())));
    running
        .tasks
        .push(tokio::spawn(crate::lease_expiry::run(server.clone())));
    running.tasks.push(tokio::spawn(publish(server)));
    Ok(running)
}

/// Binds every peer, client and metrics URL and serves them.
async fn listen(running: &mut Running, tls: &crate::tls::Tls) -> Result<()> {
    let server = running.server.clone();
    let cfg = &server.inner.cfg;
    let limits = Limits {
        max_txn_ops: cfg.max_txn_ops,
        max_request_bytes: cfg.max_request_bytes,
    };
    let services = Services::new(Arc::new(server.clone()), limits);
    let conn_limits = ConnLimits {
        max_concurrent_streams: cfg.max_concurrent_streams,
    };
    let peer_routes = || {
        tonic::service::Routes::new(server.inner.transport.service())
            .add_service(ClusterServer::new(services.clone()))
            .add_service(services.lease_service())
            .into_axum_router()
    };
    let client_routes = || {
        let routes = services
            .routes()
            .into_axum_router()
            .merge(crate::http::routes(server.clone()));
        let routes = match cfg.enable_grpc_gateway {
            // etcd's HTTP+JSON gateway (`/v3/...`) over the same services.
            true => routes.merge(ironcd_api::gateway::routes(services.clone(), limits)),
            false => routes,
        };
        routes.fallback(crate::http::fallback)
    };
    let sets: [(&'static str, &[String], Option<&ironcd_tls::TlsInfo>); 3] = [
        ("peer", &cfg.listen_peer_urls, tls.peer.as_ref()),
        ("client", &cfg.listen_client_urls, tls.client.as_ref()),
        ("metrics", &cfg.listen_metrics_urls, tls.client.as_ref()),
    ];
    for (label, urls, side) in sets {
        for (addr, mode) in crate::tls::listeners(urls)? {
            let listener = ServeListener::bind(label, &addr, mode, side).await?;
            let routes = match label {
                "peer" => peer_routes(),
                // Counted as etcd counts its gRPC calls (the middleware
                // passes anything that is not one of etcd's methods).
                "client" => {
                    client_routes().layer(axum::middleware::from_fn(crate::grpc_metrics::track))
                }
                _ => crate::http::routes(server.clone()).fallback(crate::http::fallback),
            };
            running.tasks.push(serve(
                listener,
                routes,
                conn_limits,
                running.shutdown.subscribe(),
            ));
            let how = match mode {
                Mode::Plain => "insecurely",
                Mode::Tls => "securely",
                Mode::Both => "securely and insecurely",
            };
            tracing::info!(address = %addr, "serving {label} traffic {how}");
        }
    }
    Ok(())
}

/// Keeps the quota's view of the backend size current.
async fn refresh_db_size(server: EtcdServer) {
    let every = Duration::from_millis(crate::state::DB_SIZE_REFRESH_MS);
    loop {
        tokio::time::sleep(every).await;
        let state = server.inner.state.clone();
        let _ = tokio::task::spawn_blocking(move || state.refresh_db_size()).await;
    }
}

/// Publishes this member's name and client URLs through raft, retrying
/// until it is applied, then declares the member ready.
async fn publish(server: EtcdServer) {
    let cfg = &server.inner.cfg;
    let attr = ClusterMemberAttrSetRequest {
        member_id: server.id(),
        member_attributes: Some(MemberAttributes {
            name: cfg.name.clone(),
            client_urls: cfg.advertise_client_urls.clone(),
        }),
    };
    loop {
        let req = InternalRaftRequest {
            cluster_member_attr_set: Some(attr.clone()),
            ..Default::default()
        };
        match server.propose_as::<()>(req).await {
            Ok(()) => break,
            Err(e) => {
                tracing::debug!(error = %e, "publishing member attributes; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    tracing::info!(
        local_member_id = %format!("{:x}", server.id()),
        name = %cfg.name,
        client_urls = %cfg.advertise_client_urls.join(","),
        "published local member to cluster through raft"
    );
    tracing::info!(address = %cfg.listen_client_urls.join(","), "ready to serve client requests");
}
