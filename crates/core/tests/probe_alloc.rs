//! Probing allocates at most a fixed cap, whatever the bytes.
//!
//! This binary counts every allocation through its global allocator and
//! holds a single test, so no other test's allocations are counted.

#![allow(unsafe_code)] // a counting GlobalAlloc wrapper; it only forwards to System

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};

use kling_core::probe;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::*;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(live, Ordering::SeqCst);
        // SAFETY: same layout, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most a probe may hold at once: the largest moov it reads, plus
/// change for the parsed summary and error messages.
const CAP: usize = (16 << 20) + (64 << 10);

/// Bytes allocated above what was live before, at the peak of `probe`.
fn peak_during(file: &[u8]) -> usize {
    let cursor = Cursor::new(file);
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let _ = probe::probe_reader(cursor);
    PEAK.load(Ordering::SeqCst) - before
}

fn file_from(kinds: &[([u8; 4], u64, u8)]) -> Vec<u8> {
    // Boxes whose declared sizes are arbitrary: some honest, some lies.
    let mut out = ftyp(b"isom");
    for (kind, size, fill) in kinds {
        if *size > u64::from(u32::MAX) {
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(kind);
            out.extend_from_slice(&size.to_be_bytes());
        } else {
            out.extend_from_slice(&u32::try_from(*size).unwrap().to_be_bytes());
            out.extend_from_slice(kind);
        }
        out.extend(std::iter::repeat_n(*fill, usize::from(*fill) * 3));
    }
    out
}

#[test]
fn probing_never_allocates_more_than_the_cap() {
    // The worst honest case: a moov exactly at the cap is read.
    let at_cap = [ftyp(b"isom"), bx(b"moov", &vec![0; (16 << 20) - 8])].concat();
    let peak = peak_during(&at_cap);
    assert!(peak <= CAP, "at the cap: {peak} bytes");
    assert!(peak >= 16 << 20, "the moov was read: {peak} bytes");

    // Lies about sizes, in headers of every kind, allocate nothing large.
    let mut runner = TestRunner::new(Config::with_cases(512));
    let kinds = prop::sample::select(vec![
        *b"moov", *b"moof", *b"ftyp", *b"mdat", *b"trak", *b"free",
    ]);
    let boxes = prop::collection::vec((kinds, any::<u64>(), any::<u8>()), 1..8);
    runner
        .run(&boxes, |kinds| {
            let file = file_from(&kinds);
            let peak = peak_during(&file);
            prop_assert!(peak <= CAP, "{peak} bytes for {kinds:?}");
            Ok(())
        })
        .unwrap();

    // And so do mutated real files.
    let valid = [
        ftyp(b"isom"),
        bx(
            b"moov",
            &[mvhd(0, 1_000, 4_000), trak(&TrackSpec::video(1280, 720))].concat(),
        ),
        bx(b"mdat", &[0; 64]),
    ]
    .concat();
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16);
    runner
        .run(&edits, |edits| {
            let mut file = valid.clone();
            for (at, byte) in edits {
                let i = at.index(file.len());
                file[i] = byte;
            }
            let peak = peak_during(&file);
            prop_assert!(peak <= CAP, "{peak} bytes");
            Ok(())
        })
        .unwrap();
}
