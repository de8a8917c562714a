//! `Wal::save` against the physical limit of the disk under it.
//!
//! * `save/wal/{1,16,128}`: one `save` of that many 256-byte entries plus a
//!   moved commit index, each with its fdatasync, into 64 MiB preallocated
//!   segments (cuts included as they come).
//! * `save/raw_fdatasync/{1,16,128}`: the same bytes the WAL writes for that
//!   batch, written with one `pwrite` and one fdatasync into a file in the
//!   same directory, preallocated the same way — no framing, no checksums.
//!   The two alternate, save then raw write, so that both meet the same
//!   disk state and background load; a `paired` line after each batch size
//!   gives the medians of the interleaved pairs and their ratio, which
//!   drifting load on a shared machine does not skew.
//! * `sequential_write`: 32 MiB in 1 MiB writes and one fdatasync into a
//!   fresh preallocated file: the bandwidth a large batch could approach.
//!
//! Throughput is reported per entry and per byte of entry data. The data
//! goes to `$IRONCD_BENCH_DIR` if set, else the system temp directory; it
//! must be a real disk for the figures to mean anything.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ironcd_wal::{
    Entry, HardState, OpenMode, StdIo, Wal, WalConfig, WalFile, WalIo, DEFAULT_SEGMENT_SIZE_BYTES,
};

const ENTRY_DATA_BYTES: usize = 256;
const BATCH_SIZES: [u64; 3] = [1, 16, 128];
const SEQUENTIAL_CHUNK_BYTES: usize = 1 << 20;
const SEQUENTIAL_TOTAL_BYTES: usize = 32 << 20;

/// Bytes the WAL writes for `entries` entries of 256 bytes and one hard
/// state, from the frame layout in the crate docs: 20 bytes of header and
/// trailer around each payload, padded to 8.
fn wal_batch_bytes(entries: u64) -> u64 {
    let frame = |payload: u64| (20 + payload).div_ceil(8) * 8;
    entries * frame(16 + ENTRY_DATA_BYTES as u64) + frame(24)
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("IRONCD_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).expect("bench dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn throughput(entries: u64) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: entries,
        bytes: entries * ENTRY_DATA_BYTES as u64,
    }
}

/// One WAL and one raw log side by side, fed batch after batch.
struct Pair {
    entries: u64,
    wal: Wal,
    batch: Vec<Entry>,
    next: u64,
    raw: RawLog,
    raw_bytes: Vec<u8>,
}

impl Pair {
    fn new(dir: &Path, entries: u64) -> Self {
        let wal_dir = dir.join(format!("wal-{entries}"));
        let wal = Wal::create(&wal_dir, b"bench", &WalConfig::default()).expect("create");
        let data = vec![0x5a; ENTRY_DATA_BYTES];
        let batch = (0..entries)
            .map(|_| Entry {
                index: 0,
                term: 1,
                data: data.clone(),
            })
            .collect();
        let raw = RawLog::new(dir.join(format!("raw-{entries}")));
        let raw_bytes = vec![0x5a; wal_batch_bytes(entries) as usize];
        Pair {
            entries,
            wal,
            batch,
            next: 1,
            raw,
            raw_bytes,
        }
    }

    fn save(&mut self) -> Duration {
        for (k, entry) in self.batch.iter_mut().enumerate() {
            entry.index = self.next + k as u64;
        }
        self.next += self.entries;
        let state = HardState {
            term: 1,
            vote: 1,
            commit: self.next - 1,
        };
        let start = Instant::now();
        self.wal
            .save(black_box(&state), black_box(&self.batch))
            .expect("save");
        start.elapsed()
    }

    fn raw(&mut self) -> Duration {
        let start = Instant::now();
        self.raw.append_and_sync(black_box(&self.raw_bytes));
        start.elapsed()
    }
}

/// Both benchmarks run the WAL save and the raw write alternately, so both
/// see the same disk and the same background load; each reports its own
/// half. The pairs timed while measuring the WAL give a drift-free ratio.
fn bench_wal_save(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("save");
    for entries in BATCH_SIZES {
        group.throughput(throughput(entries));
        let mut pair = Pair::new(dir, entries);
        let (mut wal_times, mut raw_times) = (Vec::new(), Vec::new());
        group.bench_function(BenchmarkId::new("wal", entries), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let wal = pair.save();
                    raw_times.push(pair.raw());
                    wal_times.push(wal);
                    total += wal;
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("raw_fdatasync", entries), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        pair.save();
                        pair.raw()
                    })
                    .sum()
            })
        });
        report_pairs(entries, &mut wal_times, &mut raw_times);
    }
    group.finish();
}

fn report_pairs(entries: u64, wal: &mut [Duration], raw: &mut [Duration]) {
    let median = |times: &mut [Duration]| {
        times.sort();
        times[times.len() / 2]
    };
    let (wal_median, raw_median) = (median(wal), median(raw));
    let per_second = entries as f64 / wal_median.as_secs_f64();
    let data_mib = per_second * ENTRY_DATA_BYTES as f64 / (1 << 20) as f64;
    println!(
        "paired save/{entries}: {} interleaved pairs; median wal {:.1} µs, raw {:.1} µs, \
         ratio {:.3}; wal {:.0} entries/s, {:.2} MiB/s of entry data",
        wal.len(),
        wal_median.as_secs_f64() * 1e6,
        raw_median.as_secs_f64() * 1e6,
        wal_median.as_secs_f64() / raw_median.as_secs_f64(),
        per_second,
        data_mib,
    );
}

/// A bare append-only file with the WAL's preallocation and none of its
/// work, rolled over to a fresh file when full, like a segment cut.
struct RawLog {
    dir: std::path::PathBuf,
    file: Box<dyn WalFile>,
    files: u64,
    offset: u64,
}

impl RawLog {
    fn new(dir: std::path::PathBuf) -> Self {
        StdIo.create_dir_all(&dir).expect("raw dir");
        let file = Self::fresh_file(&dir, 0);
        RawLog {
            dir,
            file,
            files: 1,
            offset: 0,
        }
    }

    fn fresh_file(dir: &Path, n: u64) -> Box<dyn WalFile> {
        let mut file = StdIo
            .open(&dir.join(format!("raw-{n}")), OpenMode::CreateTruncate)
            .expect("raw file");
        file.preallocate(DEFAULT_SEGMENT_SIZE_BYTES)
            .expect("preallocate");
        file.sync_all().expect("fsync");
        file
    }

    fn append_and_sync(&mut self, bytes: &[u8]) {
        if self.offset + bytes.len() as u64 > DEFAULT_SEGMENT_SIZE_BYTES {
            self.file = Self::fresh_file(&self.dir, self.files);
            self.files += 1;
            self.offset = 0;
        }
        let n = self.file.write_at(bytes, self.offset).expect("pwrite");
        assert_eq!(n, bytes.len(), "a short write to a regular file");
        self.file.sync_data().expect("fdatasync");
        self.offset += n as u64;
    }
}

fn bench_sequential(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("sequential_write");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(SEQUENTIAL_TOTAL_BYTES as u64));
    let chunk = vec![0x5a; SEQUENTIAL_CHUNK_BYTES];
    let path = dir.join("sequential");
    group.bench_function("32MiB_in_1MiB_writes", |b| {
        b.iter_batched(
            || {
                let mut file = StdIo.open(&path, OpenMode::CreateTruncate).expect("file");
                file.preallocate(SEQUENTIAL_TOTAL_BYTES as u64)
                    .expect("preallocate");
                file.sync_all().expect("fsync");
                file
            },
            |mut file| {
                for i in 0..SEQUENTIAL_TOTAL_BYTES / SEQUENTIAL_CHUNK_BYTES {
                    let n = file
                        .write_at(&chunk, (i * SEQUENTIAL_CHUNK_BYTES) as u64)
                        .expect("pwrite");
                    assert_eq!(n, chunk.len());
                }
                file.sync_data().expect("fdatasync");
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let dir = bench_dir();
    bench_wal_save(c, dir.path());
    bench_sequential(c, dir.path());
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
}

criterion_group! {
    name = save;
    config = config();
    targets = benches
}
criterion_main!(save);
