//! The Watch service's gRPC route, written out by hand: tonic's generated
//! server would send `WatchResponse`s, so a revision's event would be
//! cloned and encoded once per watcher it reaches; this one sends
//! [`WatchReply`]s, whose events are encoded once for all of them
//! (`ironcd_proto::watch_reply`). On the wire nothing differs: the same
//! path, the same messages byte for byte, the same limits.

use std::convert::Infallible;
use std::task::{Context, Poll};

use ironcd_proto::codec::VecCodec;
use ironcd_proto::etcdserverpb::WatchRequest;
use ironcd_proto::watch_reply::WatchReply;
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};

use crate::service::Services;
use crate::traits::EtcdApi;
use crate::watch::WatchStream;

/// The one method's path.
const WATCH_PATH: &str = "/etcdserverpb.Watch/Watch";

/// `etcdserverpb.Watch` over [`Services`].
pub struct WatchService<S> {
    services: Services<S>,
    max_decoding_bytes: usize,
    max_encoding_bytes: usize,
}

impl<S> Clone for WatchService<S> {
    fn clone(&self) -> Self {
        WatchService {
            services: self.services.clone(),
            max_decoding_bytes: self.max_decoding_bytes,
            max_encoding_bytes: self.max_encoding_bytes,
        }
    }
}

impl<S> WatchService<S> {
    /// The service, refusing requests over `max_decoding_bytes` and
    /// responses over `max_encoding_bytes`.
    pub(crate) fn new(
        services: Services<S>,
        max_decoding_bytes: usize,
        max_encoding_bytes: usize,
    ) -> Self {
        WatchService {
            services,
            max_decoding_bytes,
            max_encoding_bytes,
        }
    }
}

impl<S> NamedService for WatchService<S> {
    const NAME: &'static str = "etcdserverpb.Watch";
}

/// One call of the method.
struct WatchCall<S>(Services<S>);

impl<S: EtcdApi> StreamingService<WatchRequest> for WatchCall<S> {
    type Response = WatchReply;
    type ResponseStream = WatchStream;
    type Future = BoxFuture<Response<WatchStream>, Status>;

    fn call(&mut self, request: Request<Streaming<WatchRequest>>) -> Self::Future {
        let services = self.0.clone();
        Box::pin(async move { services.watch(request).await })
    }
}

impl<S, B> Service<http::Request<B>> for WatchService<S>
where
    S: EtcdApi,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != WATCH_PATH {
            // As a generated server answers a method it does not have.
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let call = WatchCall(self.services.clone());
        let codec = VecCodec::<WatchReply, WatchRequest>::default();
        let mut grpc = Grpc::new(codec).apply_max_message_size_config(
            Some(self.max_decoding_bytes),
            Some(self.max_encoding_bytes),
        );
        Box::pin(async move { Ok(grpc.streaming(call, request).await) })
    }
}
