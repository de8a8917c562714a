/// A named bucket of key/value pairs (a RocksDB column family). The set is
/// fixed: these are etcd's bucket names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket(u8);

const NAMES: [&str; 10] = [
    "key",
    "meta",
    "lease",
    "auth",
    "authUsers",
    "authRoles",
    "members",
    "members_removed",
    "cluster",
    "alarm",
];

impl Bucket {
    /// mvcc key revisions → `mvccpb.KeyValue`.
    pub const KEY: Bucket = Bucket(0);
    /// consistent index, term, compaction markers.
    pub const META: Bucket = Bucket(1);
    /// leases.
    pub const LEASE: Bucket = Bucket(2);
    /// auth enabled flag and revision.
    pub const AUTH: Bucket = Bucket(3);
    /// auth users.
    pub const AUTH_USERS: Bucket = Bucket(4);
    /// auth roles.
    pub const AUTH_ROLES: Bucket = Bucket(5);
    /// cluster members.
    pub const MEMBERS: Bucket = Bucket(6);
    /// removed member ids.
    pub const MEMBERS_REMOVED: Bucket = Bucket(7);
    /// cluster version.
    pub const CLUSTER: Bucket = Bucket(8);
    /// raised alarms.
    pub const ALARM: Bucket = Bucket(9);

    /// How many buckets exist.
    pub const COUNT: usize = NAMES.len();

    /// Every bucket, in id order (the order hashes and snapshots use).
    pub fn all() -> impl Iterator<Item = Bucket> {
        (0..Self::COUNT as u8).map(Bucket)
    }

    /// etcd's name for the bucket (also the column family name).
    pub fn name(self) -> &'static str {
        NAMES[self.0 as usize]
    }

    /// Dense index, `0..COUNT`.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The bucket with dense index `id`, if it exists.
    pub fn from_index(id: usize) -> Option<Bucket> {
        (id < Self::COUNT).then_some(Bucket(id as u8))
    }
}
