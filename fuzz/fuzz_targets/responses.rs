//! Any bytes a provider sends (a status answer, a callback, an event, an
//! event stream, a generation record, an amount) give a status, a charge
//! or a typed error: never a panic, never a success without a result URL.
//!
//! `cargo +nightly fuzz run responses`. Its proptest twin runs in CI:
//! `crates/kling/tests/hostile_answers.rs`.

#![no_main]

use kling_core::{JobState, JobStatus};
use libfuzzer_sys::fuzz_target;

fn check(status: Result<JobStatus, kling_core::Error>) {
    if let Ok(JobStatus {
        state: JobState::Succeeded { outputs, .. },
        ..
    }) = status
    {
        assert!(!outputs.is_empty() && outputs.iter().all(|u| !u.is_empty()));
    }
}

fuzz_target!(|data: &[u8]| {
    // Every provider's parsers, through the facade's list.
    for provider in kling::PROVIDERS {
        for status in (provider.read_answers)(data) {
            check(Ok(status));
        }
    }
    let text = String::from_utf8_lossy(data);
    // Amounts as providers write them: read exactly or refused.
    if let Ok(credits) = text.parse::<kling_core::Credits>() {
        assert_eq!(credits.decimal().parse::<kling_core::Credits>().ok(), Some(credits));
    }
    let _ = text.parse::<kling_core::Usd>();
    let mut parser = kling_http::sse::SseParser::default();
    for chunk in data.chunks(5) {
        let _ = parser.push(chunk);
    }
});
