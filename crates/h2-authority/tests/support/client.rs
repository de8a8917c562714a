//! The client: httlib-hpack's encoder, and framing written here.

use httlib_hpack::Encoder;

use super::cases::*;
use super::*;

/// What decoding a field must give back, as far as the test knows it
/// without a table of its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// An indexed field: whatever the table holds.
    FromTable,
    /// An indexed name with this value.
    Value(Vec<u8>),
    Header(Vec<u8>, Vec<u8>),
}

pub struct Client {
    pub encoder: Encoder<'static>,
    pub stream: Vec<u8>,
    pub next_stream_id: u32,
    /// Per header block: its stream id, END_STREAM, priority, and what its
    /// fields decode to.
    pub blocks: Vec<SentBlock>,
    /// Frames other than header blocks, as sent.
    pub others: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub struct SentBlock {
    pub stream_id: u32,
    pub end_stream: bool,
    pub priority: Option<[u8; 5]>,
    pub fragment: Vec<u8>,
    pub expects: Vec<Expect>,
}

impl Client {
    pub fn new() -> Self {
        let mut client = Self {
            encoder: Encoder::default(),
            stream: PREFACE.to_vec(),
            next_stream_id: 1,
            blocks: Vec::new(),
            others: Vec::new(),
        };
        // SETTINGS_INITIAL_WINDOW_SIZE, as grpc-go opens with.
        client.send_other(&OtherFrame {
            kind: SETTINGS,
            flags: 0,
            stream_id: 0,
            payload: vec![0, 4, 0, 0, 0xff, 0xff],
        });
        client
    }

    /// How many entries the encoder's dynamic table holds.
    pub fn dynamic_len(&self) -> u32 {
        let mut scratch = Vec::new();
        (0..)
            .find(|n| {
                self.encoder
                    .encode_indexed(STATIC_ENTRIES + 1 + n, &mut scratch)
                    .is_err()
            })
            .expect("the table is finite")
    }

    pub fn resolve(&self, pick: Pick) -> u32 {
        match (pick, self.dynamic_len()) {
            (Pick::Static(index), _) => index,
            (Pick::Dynamic(n), 0) => 1 + n % STATIC_ENTRIES,
            (Pick::Dynamic(n), len) => STATIC_ENTRIES + 1 + n % len,
        }
    }

    /// Encodes one field; returns its bytes and what it decodes to.
    pub fn encode_field(&mut self, field: &Field) -> (Vec<u8>, Expect) {
        let mut out = Vec::new();
        let expect = match field {
            Field::Indexed(pick) => {
                let index = self.resolve(*pick);
                self.encoder.encode(index, &mut out).expect("index exists");
                Expect::FromTable
            }
            Field::Literal {
                name,
                value,
                indexing,
                huffman,
            } => {
                let mut flags = match indexing {
                    Indexing::With => Encoder::WITH_INDEXING,
                    Indexing::Without => 0,
                    Indexing::Never => Encoder::NEVER_INDEXED,
                };
                if *huffman {
                    flags |= Encoder::HUFFMAN_VALUE;
                }
                match name {
                    Name::Indexed(pick) => {
                        let index = self.resolve(*pick);
                        let input = (index, value.clone(), flags);
                        self.encoder.encode(input, &mut out).expect("index exists");
                        Expect::Value(value.clone())
                    }
                    Name::Literal { name, huffman } => {
                        if *huffman {
                            flags |= Encoder::HUFFMAN_NAME;
                        }
                        let input = (name.clone(), value.clone(), flags);
                        self.encoder.encode(input, &mut out).expect("literal");
                        Expect::Header(name.clone(), value.clone())
                    }
                }
            }
        };
        (out, expect)
    }

    /// Encodes a block's fields; returns the fragment, where each field
    /// starts, and what each decodes to.
    pub fn encode_block(&mut self, spec: &BlockSpec) -> (Vec<u8>, Vec<usize>, Vec<Expect>) {
        let mut fragment = Vec::new();
        for &size in &spec.size_updates {
            self.encoder
                .update_max_dynamic_size(u32::from(size), &mut fragment)
                .expect("size update");
        }
        let mut starts = Vec::new();
        let mut expects = Vec::new();
        for field in &spec.fields {
            let (bytes, expect) = self.encode_field(field);
            starts.push(fragment.len());
            fragment.extend(bytes);
            expects.push(expect);
        }
        (fragment, starts, expects)
    }

    pub fn take_stream_id(&mut self) -> u32 {
        let id = self.next_stream_id;
        self.next_stream_id += 2;
        id
    }

    /// Sends a header block as HEADERS + CONTINUATION frames.
    pub fn send_block(&mut self, fragment: Vec<u8>, framing: &Framing, expects: Vec<Expect>) {
        let stream_id = self.take_stream_id();
        let mut cuts: Vec<usize> = framing
            .splits
            .iter()
            .map(|split| split.index(fragment.len() + 1))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut pieces = Vec::new();
        let mut from = 0;
        for cut in cuts {
            pieces.push(&fragment[from..cut]);
            from = cut;
        }
        pieces.push(&fragment[from..]);
        let last = pieces.len() - 1;
        for (i, piece) in pieces.iter().enumerate() {
            let mut flags = if i == last { END_HEADERS } else { 0 };
            if i > 0 {
                write_frame(&mut self.stream, CONTINUATION, flags, stream_id, piece);
                continue;
            }
            let mut payload = Vec::new();
            if let Some(pad) = framing.padding {
                flags |= PADDED;
                payload.push(pad);
            }
            if let Some(priority) = framing.priority {
                flags |= PRIORITY;
                payload.extend_from_slice(&priority);
            }
            if framing.end_stream {
                flags |= END_STREAM;
            }
            payload.extend_from_slice(piece);
            payload.resize(payload.len() + usize::from(framing.padding.unwrap_or(0)), 0);
            write_frame(&mut self.stream, HEADERS, flags, stream_id, &payload);
        }
        self.blocks.push(SentBlock {
            stream_id,
            end_stream: framing.end_stream,
            priority: framing.priority,
            fragment,
            expects,
        });
    }

    pub fn send_other(&mut self, frame: &OtherFrame) {
        let mut bytes = Vec::new();
        write_frame(
            &mut bytes,
            frame.kind,
            frame.flags,
            frame.stream_id,
            &frame.payload,
        );
        self.stream.extend_from_slice(&bytes);
        self.others.push(bytes);
    }

    /// Sends every block of `specs`, then one block referencing every
    /// dynamic entry the encoder still has, so that tables out of step show.
    pub fn send_all(&mut self, specs: &[BlockSpec]) {
        for spec in specs {
            let (fragment, _, expects) = self.encode_block(spec);
            self.send_block(fragment, &spec.framing, expects);
            for frame in &spec.others {
                self.send_other(frame);
            }
        }
        let entries = self.dynamic_len();
        if entries == 0 {
            return;
        }
        let mut probe = Vec::new();
        for n in 0..entries {
            self.encoder
                .encode(STATIC_ENTRIES + 1 + n, &mut probe)
                .expect("entry exists");
        }
        let framing = Framing {
            end_stream: true,
            padding: None,
            priority: None,
            splits: Vec::new(),
        };
        let expects = vec![Expect::FromTable; entries as usize];
        self.send_block(probe, &framing, expects);
    }
}

/// A header block the rewriter cannot parse, in its frames, with the
/// client's encoder used for `Truncated`.
pub fn garbage_frames(client: &mut Client, garbage: &Garbage, spec: &BlockSpec) -> Vec<u8> {
    let stream_id = client.take_stream_id();
    let mut frames = Vec::new();
    let block = |fragment: &[u8], out: &mut Vec<u8>| {
        write_frame(out, HEADERS, END_HEADERS, stream_id, fragment);
    };
    match garbage {
        Garbage::Truncated(at) => {
            let (fragment, starts, _) = client.encode_block(spec);
            // Cut strictly inside a field of two bytes or more.
            let mut ends = starts[1..].to_vec();
            ends.push(fragment.len());
            let cuts: Vec<usize> = starts
                .iter()
                .zip(&ends)
                .flat_map(|(&start, &end)| start + 1..end)
                .collect();
            if cuts.is_empty() {
                block(&[0x80], &mut frames);
            } else {
                block(&fragment[..cuts[at.index(cuts.len())]], &mut frames);
            }
        }
        Garbage::IndexZero => block(&[0x82, 0x80], &mut frames),
        // Index 5000: 127 + 9 + 38 × 128.
        Garbage::IndexOutOfRange => block(&[0xff, 0x89, 0x26], &mut frames),
        // A literal name of four Huffman bytes, all ones: it holds EOS.
        Garbage::BadHuffman => block(
            &[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x01, b'x'],
            &mut frames,
        ),
        Garbage::BadPadding => {
            write_frame(
                &mut frames,
                HEADERS,
                END_HEADERS | PADDED,
                stream_id,
                &[9, 0x82],
            );
        }
        Garbage::Interrupted => {
            write_frame(&mut frames, HEADERS, 0, stream_id, &[0x82]);
            write_frame(&mut frames, DATA, 0, stream_id, b"x");
        }
        Garbage::ForeignContinuation => {
            write_frame(&mut frames, HEADERS, 0, stream_id, &[0x82]);
            write_frame(
                &mut frames,
                CONTINUATION,
                END_HEADERS,
                stream_id + 2,
                &[0x84],
            );
        }
    }
    frames
}

/// A request whose `:authority` would be rewritten if anything were still
/// being parsed: a literal without indexing, static name, raw value.
pub fn url_request(stream_id: u32) -> Vec<u8> {
    let url = b"http://127.0.0.1:2379";
    let mut fragment = vec![0x83, 0x01, url.len() as u8];
    fragment.extend_from_slice(url);
    let mut frame = Vec::new();
    write_frame(&mut frame, HEADERS, END_HEADERS, stream_id, &fragment);
    frame
}
