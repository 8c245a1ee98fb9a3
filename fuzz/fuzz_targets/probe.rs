//! Probing any bytes returns a result: never a panic, never an allocation
//! beyond the probe's cap.
//!
//! Run from the workspace root with `cargo +nightly fuzz run probe CORPUS --
//! -malloc_limit_mb=17`, seeding CORPUS with `crates/core/tests/fixtures/*`:
//! the malloc limit turns any allocation above the probe's 16 MiB cap into
//! a finding.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kling_core::probe::probe_reader(Cursor::new(data));
});
