//! What the tests that drive members through the `etcd-client` crate
//! share: a small runtime and a connection with bounded timeouts.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// A two-thread runtime for a test's client calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A client of `endpoints` (connected lazily) whose every request gives up
/// after `request_timeout`.
pub async fn connect(endpoints: &[String], request_timeout: Duration) -> Client {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(request_timeout);
    Client::connect(endpoints, Some(options))
        .await
        .expect("connect (lazy) to the cluster")
}
