//! What the `etcd-client` differential suites (`client_election.rs`,
//! `client_lease.rs`, `client_watch.rs`) share: one `#[test]` per area and
//! implementation, and the runner's body that drives an area on a fresh
//! cluster and, when it fails, names it and shows the member's log.

use std::future::Future;
use std::time::Duration;

use etcd_client::Client;
use ironcd_tests::Cluster;

/// One `#[test]` per area and implementation (`etcd::<area>` and
/// `ironcd::<area>`), each run by the runner its group names:
/// `on_both_implementations!(run: [a, b], run_on_three_members: [c])`.
/// A runner is `fn(Server, &str, area)` in the calling file.
macro_rules! on_both_implementations {
    ($($runner:ident: [$($area:ident),* $(,)?]),* $(,)?) => {
        mod etcd {
            $($(
                #[test]
                fn $area() {
                    super::$runner(super::Server::etcd(), stringify!($area), super::$area);
                }
            )*)*
        }
        mod ironcd {
            $($(
                #[test]
                fn $area() {
                    super::$runner(ironcd_tests::ironcd!(), stringify!($area), super::$area);
                }
            )*)*
        }
    };
}

/// Runs `area` on a fresh runtime with a client of `cluster`'s first
/// member (every request bounded by `request_timeout`) and that member's
/// endpoint. A panic in the area fails the test with the area's name, the
/// implementation and the member's log tail.
pub fn drive<F, Fut>(cluster: &Cluster, area_name: &str, request_timeout: Duration, area: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = crate::client::runtime();
    rt.block_on(async {
        let endpoint = cluster.endpoint(0);
        let client = crate::client::connect(std::slice::from_ref(&endpoint), request_timeout).await;
        if let Err(e) = tokio::spawn(area(client, endpoint)).await {
            panic!(
                "{area_name} on {} failed: {e}\n{}",
                cluster.implementation().name(),
                cluster.log_tail(0, 30)
            );
        }
    });
}
