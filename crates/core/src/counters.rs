//! Counts of the work a process does (validations, file probes), for the
//! tests that hold "one command validates once and probes each file once".
//!
//! Compiled in only with the `counters` feature, which no user enables;
//! then each event is appended as one line to the file named by
//! `KLING_CORE_COUNTS`, when it is set.

/// Records one `event` (`validate`, `probe PATH`).
#[cfg(feature = "counters")]
pub(crate) fn count(event: &str) {
    use std::io::Write as _;

    let Some(path) = std::env::var_os("KLING_CORE_COUNTS") else {
        return;
    };
    // One write per line on an append-only file: lines from concurrent
    // tasks never interleave.
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(format!("{event}\n").as_bytes());
    }
}

/// Records nothing: the `counters` feature is off.
#[cfg(not(feature = "counters"))]
#[inline]
pub(crate) fn count(_event: &str) {}
