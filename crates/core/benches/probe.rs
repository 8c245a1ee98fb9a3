//! Prints what probing a 150 MB MP4 costs: time per probe and bytes read,
//! with `moov` at the end and at the front.
//!
//! Run with `cargo bench -p kling-core --bench probe`. Targets: under 1 ms
//! per probe and under 1 MiB read beyond the `moov` box itself.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use kling_core::probe;

/// The size of the generated files' `mdat`.
const MDAT_BYTES: u64 = 150_000_000;
const ITERATIONS: u32 = 2_000;

/// A reader that counts what it reads.
struct Counting<R> {
    inner: R,
    bytes: u64,
    calls: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.calls += 1;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// The `ftyp` and `moov` boxes of a real clip.
fn boxes_of(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let data = std::fs::read(path).expect("fixture");
    let mut at = 0;
    let (mut ftyp, mut moov) = (Vec::new(), Vec::new());
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        match &data[at + 4..at + 8] {
            b"ftyp" => ftyp = data[at..at + size].to_vec(),
            b"moov" => moov = data[at..at + size].to_vec(),
            _ => {}
        }
        at += size;
    }
    (ftyp, moov)
}

/// Writes `ftyp`, then `moov` and a 150 MB `mdat` in the given order. The
/// `mdat` is written sparse: its bytes are never read.
fn generate(path: &Path, ftyp: &[u8], moov: &[u8], moov_first: bool) {
    let mut file = File::create(path).unwrap();
    file.write_all(ftyp).unwrap();
    let mdat_header = |file: &mut File| {
        file.write_all(&u32::try_from(MDAT_BYTES).unwrap().to_be_bytes())
            .unwrap();
        file.write_all(b"mdat").unwrap();
    };
    if moov_first {
        file.write_all(moov).unwrap();
        mdat_header(&mut file);
        file.set_len(ftyp.len() as u64 + moov.len() as u64 + MDAT_BYTES)
            .unwrap();
    } else {
        mdat_header(&mut file);
        let end = ftyp.len() as u64 + MDAT_BYTES;
        file.seek(SeekFrom::Start(end)).unwrap();
        file.write_all(moov).unwrap();
    }
}

fn measure(path: &Path, moov_len: u64) -> (Duration, u64, u64) {
    let mut last = (0, 0);
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        let mut reader = Counting {
            inner: File::open(path).unwrap(),
            bytes: 0,
            calls: 0,
        };
        let probed = probe::probe_reader(&mut reader).expect("probe");
        std::hint::black_box(probed);
        last = (reader.bytes, reader.calls);
    }
    let per_probe = start.elapsed() / ITERATIONS;
    (per_probe, last.0.saturating_sub(moov_len), last.1)
}

fn main() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faststart.mp4");
    let (ftyp, moov) = boxes_of(&fixture);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "probing a {} MB MP4 ({} iterations each; moov is {} bytes)",
        MDAT_BYTES / 1_000_000,
        ITERATIONS,
        moov.len()
    );
    for (name, moov_first) in [("moov at the end", false), ("moov at the front", true)] {
        let path = dir
            .path()
            .join(format!("{}.mp4", if moov_first { "front" } else { "end" }));
        generate(&path, &ftyp, &moov, moov_first);
        let size = std::fs::metadata(&path).unwrap().len();
        let (per_probe, beyond_moov, calls) = measure(&path, moov.len() as u64);
        println!(
            "{name:>18}: file {size} bytes, {:.1} µs per probe (open included), \
             {beyond_moov} bytes read beyond moov in {calls} reads",
            per_probe.as_secs_f64() * 1e6
        );
        assert!(
            beyond_moov < 1 << 20,
            "read {beyond_moov} bytes beyond moov"
        );
    }
}
