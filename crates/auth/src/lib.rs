//! ironcd-auth: users, roles, range permissions and tokens (simple and JWT),
//! stored in the backend's auth buckets.
//!
//! Not built yet: arrives with the auth issue.
