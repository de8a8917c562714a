//! What a test case is made of, and the strategies that generate it.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

#[derive(Debug, Clone, Copy)]
pub enum Indexing {
    With,
    Without,
    Never,
}

/// An entry of the encoder's table: a static index, or the `n`th dynamic
/// entry (modulo the table's length; a static one while it is empty).
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    Static(u32),
    Dynamic(u32),
}

#[derive(Debug, Clone)]
pub enum Name {
    Indexed(Pick),
    Literal { name: Vec<u8>, huffman: bool },
}

#[derive(Debug, Clone)]
pub enum Field {
    Indexed(Pick),
    Literal {
        name: Name,
        value: Vec<u8>,
        indexing: Indexing,
        huffman: bool,
    },
}

/// How a header block is carried: HEADERS (padded, with priority) plus
/// CONTINUATION frames cut at `splits`.
#[derive(Debug, Clone)]
pub struct Framing {
    pub end_stream: bool,
    pub padding: Option<u8>,
    pub priority: Option<[u8; 5]>,
    pub splits: Vec<Index>,
}

#[derive(Debug, Clone)]
pub struct BlockSpec {
    pub size_updates: Vec<u16>,
    pub fields: Vec<Field>,
    pub framing: Framing,
    /// Frames sent after this block, before the next one.
    pub others: Vec<OtherFrame>,
}

#[derive(Debug, Clone)]
pub struct OtherFrame {
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
    pub payload: Vec<u8>,
}

/// How the bytes reach the rewriter and leave it: the sizes of the socket
/// reads and of the caller's buffers, taken in turn.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub chunks: Vec<usize>,
    pub reads: Vec<usize>,
}

/// What a header block in the stream must not be able to parse.
#[derive(Debug, Clone)]
pub enum Garbage {
    /// A block cut inside one of its representations.
    Truncated(Index),
    /// Indexed field 0.
    IndexZero,
    /// An index far past the end of the table.
    IndexOutOfRange,
    /// A Huffman string holding EOS.
    BadHuffman,
    /// More padding than payload.
    BadPadding,
    /// A HEADERS frame without END_HEADERS followed by DATA.
    Interrupted,
    /// A CONTINUATION on another stream.
    ForeignContinuation,
}

// ---------------------------------------------------------------------------
// Strategies.

pub fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]{1,8}){0,3}",
        prop::sample::select(vec!["[::1]", "[fe80::1]", "[2001:db8::7]", "localhost"])
            .prop_map(str::to_string),
    ]
}

pub fn host_port() -> impl Strategy<Value = String> {
    (host(), prop::option::weighted(0.9, any::<u16>())).prop_map(|(host, port)| match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// `http(s)://host:port` with 0 to 8 trailing slashes.
pub fn url() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), host_port(), 0..=MAX_REPAIRABLE_SLASHES + 2).prop_map(
        |(tls, host_port, slashes)| {
            let scheme = if tls { "https" } else { "http" };
            format!("{scheme}://{host_port}{}", "/".repeat(slashes)).into_bytes()
        },
    )
}

pub fn garbage_authority() -> impl Strategy<Value = Vec<u8>> {
    let fixed = vec![
        "",
        "http://",
        "https://",
        "http:///",
        "http://u@h:1",
        "http://u:p@h:1/",
        "http://h:1/path",
        "http://h:1?x=1",
        "http://h:1#f",
        "http://h:1/a/",
        "unix://sock",
        "HTTP://h:1",
        "http:/h:1",
        "http://::1:2379",
        "http://h:1//////////",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        prop::collection::vec(any::<u8>(), 0..16)
            .prop_map(|tail| [b"http://".as_slice(), &tail].concat()),
        prop::sample::select(fixed).prop_map(|s| s.as_bytes().to_vec()),
    ]
}

pub fn authority_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        5 => url(),
        2 => host_port().prop_map(String::into_bytes),
        2 => garbage_authority(),
    ]
}

pub fn other_name() -> impl Strategy<Value = Vec<u8>> {
    let known = vec![
        "user-agent",
        "te",
        "content-type",
        "grpc-timeout",
        ":path",
        ":method",
        ":scheme",
        "host",
        "x-url",
        ":authority-ish",
    ];
    prop_oneof![
        prop::sample::select(known).prop_map(|s| s.as_bytes().to_vec()),
        "[a-z][a-z0-9-]{0,15}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 1..12),
    ]
}

pub fn other_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..24),
        1 => prop::collection::vec(any::<u8>(), 100..400),
        1 => url(),
    ]
}

pub fn indexing() -> impl Strategy<Value = Indexing> {
    prop_oneof![
        3 => Just(Indexing::With),
        1 => Just(Indexing::Without),
        1 => Just(Indexing::Never),
    ]
}

pub fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        (1..=STATIC_ENTRIES).prop_map(Pick::Static),
        any::<u32>().prop_map(Pick::Dynamic),
    ]
}

pub fn field() -> impl Strategy<Value = Field> {
    let authority_name = prop_oneof![
        Just(Name::Indexed(Pick::Static(1))),
        any::<bool>().prop_map(|huffman| Name::Literal {
            name: b":authority".to_vec(),
            huffman
        }),
    ];
    let other_name = prop_oneof![
        (2..=STATIC_ENTRIES).prop_map(|i| Name::Indexed(Pick::Static(i))),
        (other_name(), any::<bool>()).prop_map(|(name, huffman)| Name::Literal { name, huffman }),
    ];
    let literal = |name: BoxedStrategy<Name>, value: BoxedStrategy<Vec<u8>>| {
        (name, value, indexing(), any::<bool>()).prop_map(|(name, value, indexing, huffman)| {
            Field::Literal {
                name,
                value,
                indexing,
                huffman,
            }
        })
    };
    // A dynamic name may be `:authority`: give it values of both kinds.
    let dynamic_name = any::<u32>().prop_map(|n| Name::Indexed(Pick::Dynamic(n)));
    let dynamic_value = prop_oneof![authority_value(), other_value()];
    prop_oneof![
        3 => literal(authority_name.boxed(), authority_value().boxed()),
        3 => literal(other_name.boxed(), other_value().boxed()),
        2 => literal(dynamic_name.boxed(), dynamic_value.boxed()),
        3 => pick().prop_map(Field::Indexed),
    ]
}

pub fn framing() -> impl Strategy<Value = Framing> {
    (
        any::<bool>(),
        prop::option::of(any::<u8>()),
        prop::option::of(any::<[u8; 5]>()),
        prop::collection::vec(any::<Index>(), 0..4),
    )
        .prop_map(|(end_stream, padding, priority, splits)| Framing {
            end_stream,
            padding,
            priority,
            splits,
        })
}

pub fn other_frame() -> impl Strategy<Value = OtherFrame> {
    let payload = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::collection::vec(any::<u8>(), 1000..3000),
    ];
    (
        prop::sample::select(vec![DATA, PING, WINDOW_UPDATE, SETTINGS, 0x2, 0x3, 0xfa]),
        any::<u8>(),
        0..10u32,
        payload,
    )
        .prop_map(|(kind, flags, stream_id, payload)| OtherFrame {
            kind,
            flags,
            stream_id,
            payload,
        })
}

pub fn block() -> impl Strategy<Value = BlockSpec> {
    (
        prop::collection::vec(0..=TABLE_SIZE_BYTES, 0..=2),
        prop::collection::vec(field(), 1..10),
        framing(),
        prop::collection::vec(other_frame(), 0..3),
    )
        .prop_map(|(size_updates, fields, framing, others)| BlockSpec {
            size_updates,
            fields,
            framing,
            others,
        })
}

pub fn delivery() -> impl Strategy<Value = Delivery> {
    let size = prop_oneof![3 => 1..16usize, 1 => 16..5000usize];
    (
        prop::collection::vec(size.clone(), 1..8),
        prop::collection::vec(size, 1..8),
    )
        .prop_map(|(chunks, reads)| Delivery { chunks, reads })
}

pub fn garbage() -> impl Strategy<Value = Garbage> {
    prop_oneof![
        3 => any::<Index>().prop_map(Garbage::Truncated),
        1 => Just(Garbage::IndexZero),
        1 => Just(Garbage::IndexOutOfRange),
        1 => Just(Garbage::BadHuffman),
        1 => Just(Garbage::BadPadding),
        1 => Just(Garbage::Interrupted),
        1 => Just(Garbage::ForeignContinuation),
    ]
}
