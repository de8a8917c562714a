//! Cluster membership records: ids, names, URLs, learners, removed ids.
//!
//! Stored in the backend's `members` bucket (key: the id as 16 hex digits,
//! value: an `etcdserverpb.Member`) and `members_removed` (key: the id),
//! written in the same batch as the `consistent_index` of the entry that
//! changed them, so a snapshot carries them and a restart finds them.

use std::collections::{BTreeMap, BTreeSet};

use ironcd_backend::{Backend, BatchTx, Bucket, ReadTx};
use ironcd_proto::etcdserverpb::Member;
use prost::Message;

use crate::config::InitialMember;
use crate::error::{Error, Result};

/// The first 8 bytes of the SHA-1 of `bytes`, big-endian: how etcd turns
/// a member's or a cluster's description into its id.
fn sha1_id(bytes: &[u8]) -> u64 {
    use sha1::Digest;
    let hash = sha1::Sha1::digest(bytes);
    u64::from_be_bytes(hash[..8].try_into().expect("SHA-1 has 20 bytes"))
}

/// A member's id as etcd computes it, so that the same flags give the same
/// ids: SHA-1 over its peer URLs (sorted, concatenated), then the cluster
/// token (`--initial-cluster-token` for founders; etcd passes an empty one
/// for a member added at run time), then, for an added member, the Unix
/// time in seconds as decimal digits (so a re-added member gets a new id).
pub fn member_id(peer_urls: &[String], token: &str, added_at_s: Option<u64>) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut bytes = urls.concat().into_bytes();
    bytes.extend_from_slice(token.as_bytes());
    if let Some(secs) = added_at_s {
        bytes.extend_from_slice(secs.to_string().as_bytes());
    }
    sha1_id(&bytes)
}

/// The cluster id as etcd computes it: SHA-1 over the founding members'
/// ids, sorted, each as 8 big-endian bytes.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    sha1_id(&bytes)
}

/// The founding members as `--initial-cluster` describes them.
pub fn initial_members(cluster: &[InitialMember], token: &str) -> Vec<Member> {
    cluster
        .iter()
        .map(|m| Member {
            id: member_id(&m.peer_urls, token, None),
            name: m.name.clone(),
            peer_ur_ls: m.peer_urls.clone(),
            client_ur_ls: Vec::new(),
            is_learner: false,
        })
        .collect()
}

fn key(id: u64) -> Vec<u8> {
    format!("{id:016x}").into_bytes()
}

/// The membership as the applier last left it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Members {
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
}

impl Members {
    /// The records as the backend holds them (at start, and after a
    /// snapshot install replaced the backend). A record that does not
    /// decode is corruption: the member does not start.
    pub fn recover<B: Backend>(backend: &B) -> Result<Members> {
        let tx = backend.read_tx();
        let mut out = Members::default();
        for (k, v) in tx.range(Bucket::MEMBERS, &[], Some(&[]), 0)? {
            let m = Member::decode(v.as_slice())
                .map_err(|e| Error::Corrupt(format!("member record {k:?}: {e}")))?;
            out.members.insert(m.id, m);
        }
        for (k, _) in tx.range(Bucket::MEMBERS_REMOVED, &[], Some(&[]), 0)? {
            let id = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .ok_or_else(|| Error::Corrupt(format!("removed member key {k:?}")))?;
            out.removed.insert(id);
        }
        Ok(out)
    }

    /// Every member, by id.
    pub fn list(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// The member with `id`.
    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    /// True when `id` was a member and was removed.
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// True when there are no records (a new data directory).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member (other than `except`) that has one of `urls` as a peer URL.
    pub fn with_peer_url(&self, urls: &[String], except: u64) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.id != except && m.peer_ur_ls.iter().any(|u| urls.contains(u)))
    }

    /// Adds or replaces a record, in memory and in `tx`.
    pub fn upsert(&mut self, tx: &mut impl BatchTx, m: Member) {
        tx.put(Bucket::MEMBERS, &key(m.id), &m.encode_to_vec());
        self.members.insert(m.id, m);
    }

    /// Removes a member and remembers its id as removed.
    pub fn remove(&mut self, tx: &mut impl BatchTx, id: u64) {
        tx.delete(Bucket::MEMBERS, &key(id));
        tx.put(Bucket::MEMBERS_REMOVED, &key(id), b"removed");
        self.members.remove(&id);
        self.removed.insert(id);
    }

    /// Changes a member through `f` if it exists; returns whether it did.
    pub fn update(&mut self, tx: &mut impl BatchTx, id: u64, f: impl FnOnce(&mut Member)) -> bool {
        let Some(mut m) = self.members.get(&id).cloned() else {
            return false;
        };
        f(&mut m);
        self.upsert(tx, m);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcd_backend::{BackendConfig, MemBackend};

    #[test]
    fn ids_are_the_ones_etcd_prints_for_its_defaults() {
        // `etcd` with no flags: member 8e9e05c52164694d of cluster
        // cdf818194e3a8c32, as every etcd 3.x logs at its first start.
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster", None);
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = vec!["http://127.0.0.1:2380".to_string()];
        let b = vec!["http://127.0.0.1:2381".to_string()];
        assert_eq!(member_id(&a, "t", None), member_id(&a, "t", None));
        assert_ne!(member_id(&a, "t", None), member_id(&b, "t", None));
        assert_ne!(member_id(&a, "t", None), member_id(&a, "u", None));
        assert_ne!(member_id(&a, "t", Some(1)), member_id(&a, "t", Some(2)));
        assert_eq!(cluster_id(&[1, 2]), cluster_id(&[2, 1]));
    }

    #[test]
    fn records_survive_a_reload() {
        let backend = MemBackend::open_in_memory(BackendConfig::default());
        let mut members = Members::default();
        {
            let mut tx = backend.batch_tx();
            for m in initial_members(
                &[InitialMember {
                    name: "a".into(),
                    peer_urls: vec!["http://a:1".into()],
                }],
                "tok",
            ) {
                members.upsert(&mut tx, m);
            }
            let id = members.list()[0].id;
            assert!(members.update(&mut tx, id, |m| m.client_ur_ls = vec!["http://a:2".into()]));
            members.upsert(
                &mut tx,
                Member {
                    id: 9,
                    name: String::new(),
                    peer_ur_ls: vec!["http://b:1".into()],
                    client_ur_ls: vec![],
                    is_learner: true,
                },
            );
            members.remove(&mut tx, 9);
        }
        let loaded = Members::recover(&backend).unwrap();
        assert_eq!(loaded, members);
        assert!(loaded.is_removed(9));
        assert_eq!(
            loaded.list()[0].client_ur_ls,
            vec!["http://a:2".to_string()]
        );
    }
}
