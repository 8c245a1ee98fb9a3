//! Probing any bytes returns a result: never a panic, never an allocation
//! beyond the probe's cap.
//!
//! Run with `cargo +nightly fuzz run probe` from `crates/core`; seed the
//! corpus with `tests/fixtures/*`.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kling_core::probe::probe_reader(Cursor::new(data));
});
