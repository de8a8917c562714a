//! [`RequestContext`]: what a request says about its caller beyond its
//! message — the auth token, the verified client certificate's name, and
//! etcd's request metadata — read once from the tonic request by the
//! services and handed to every server call.

use tonic::metadata::MetadataMap;

/// The metadata key of an auth token (etcd's `rpctypes.TokenFieldNameGRPC`).
pub const TOKEN_METADATA_KEY: &str = "token";
/// The metadata key clientv3's `WithRequireLeader` sets (etcd's
/// `rpctypes.MetadataRequireLeaderKey`), with the value
/// [`REQUIRE_LEADER_VALUE`].
pub const REQUIRE_LEADER_METADATA_KEY: &str = "hasleader";
/// See [`REQUIRE_LEADER_METADATA_KEY`].
pub const REQUIRE_LEADER_VALUE: &str = "true";
/// The metadata key a member sets (to `"true"`) on a request it forwards
/// to the leader over the peer port (a keep-alive, a TimeToLive): the
/// receiver answers it itself or refuses, never forwards it again.
pub const FORWARDED_METADATA_KEY: &str = "ironcd-forwarded";

/// The common name of the client certificate a TLS listener verified for
/// this connection. The listener puts it in the request's extensions; no
/// request can set it through its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedClientName(pub String);

/// Who calls, as the request carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The `token` metadata: a token from `Auth.Authenticate`.
    pub auth_token: Option<String>,
    /// The verified client certificate's common name (TLS with client
    /// certificate auth), used as the user when auth is on and no token is
    /// given, as etcd does.
    pub client_cert_name: Option<String>,
    /// `hasleader: true`: refuse with `etcdserver: no leader` rather than
    /// wait when this member knows no leader.
    pub require_leader: bool,
    /// Forwarded by another member ([`FORWARDED_METADATA_KEY`]).
    pub forwarded: bool,
}

impl RequestContext {
    /// Reads the context of `request`.
    pub fn of<T>(request: &tonic::Request<T>) -> RequestContext {
        let mut context = Self::from_metadata(request.metadata());
        context.client_cert_name = request
            .extensions()
            .get::<VerifiedClientName>()
            .map(|name| name.0.clone());
        context
    }

    /// The parts carried in gRPC metadata.
    pub fn from_metadata(metadata: &MetadataMap) -> RequestContext {
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        RequestContext {
            auth_token: text(TOKEN_METADATA_KEY).filter(|t| !t.is_empty()),
            client_cert_name: None,
            require_leader: text(REQUIRE_LEADER_METADATA_KEY).as_deref()
                == Some(REQUIRE_LEADER_VALUE),
            forwarded: text(FORWARDED_METADATA_KEY).as_deref() == Some("true"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_extensions_fill_the_context() {
        let mut request = tonic::Request::new(());
        assert_eq!(RequestContext::of(&request), RequestContext::default());
        request
            .metadata_mut()
            .insert(TOKEN_METADATA_KEY, "abc.1".parse().unwrap());
        request
            .metadata_mut()
            .insert(REQUIRE_LEADER_METADATA_KEY, "true".parse().unwrap());
        request
            .extensions_mut()
            .insert(VerifiedClientName("client-1".into()));
        let context = RequestContext::of(&request);
        assert_eq!(context.auth_token.as_deref(), Some("abc.1"));
        assert_eq!(context.client_cert_name.as_deref(), Some("client-1"));
        assert!(context.require_leader);
        // Only the exact value asks for a leader; an empty token is none.
        let mut other = tonic::Request::new(());
        other
            .metadata_mut()
            .insert(REQUIRE_LEADER_METADATA_KEY, "yes".parse().unwrap());
        other
            .metadata_mut()
            .insert(TOKEN_METADATA_KEY, "".parse().unwrap());
        let context = RequestContext::of(&other);
        assert!(!context.require_leader);
        assert_eq!(context.auth_token, None);
    }
}
