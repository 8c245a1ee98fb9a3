//! Whatever a provider answers, its adapter's parser gives a status or a
//! typed error: never a panic, never a success without a result URL.

#![cfg(all(feature = "shortapi", feature = "aimlapi", feature = "oxen"))]

use kling::{Error, JobState, JobStatus};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys the three providers use, so that generated answers reach deep into
/// the parsers rather than failing at the first field.
const KEYS: &[&str] = &[
    "code",
    "data",
    "status",
    "result",
    "videos",
    "images",
    "url",
    "id",
    "video",
    "error",
    "name",
    "message",
    "generation_id",
    "result_url",
    "error_message",
    "generations",
    "refunded",
    "meta",
    "usage",
    "credits_used",
    "generation",
    "model_name",
    "enqueued_at",
    "cost",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-3i64..8).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("queued"),
            Just("processing"),
            Just("generating"),
            Just("completed"),
            Just("succeeded"),
            Just("failed"),
            Just("error"),
            Just("cancelled"),
            Just("waiting"),
            Just("https://cdn.example/v.mp4"),
            Just(""),
        ]
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| ((*k).to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A status is acceptable when a success carries a URL; an error when it
/// is one of the parsers' own kinds.
fn acceptable(parsed: &Result<JobStatus, Error>) -> bool {
    match parsed {
        Ok(status) => match &status.state {
            JobState::Succeeded { outputs, .. } => {
                outputs.iter().all(|u| !u.is_empty()) && !outputs.is_empty()
            }
            _ => true,
        },
        Err(e) => matches!(e, Error::Protocol { .. } | Error::Rejected { .. }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_json_answer_is_read_or_refused(answer in json()) {
        prop_assert!(acceptable(&kling::shortapi::parse_status(answer.clone())));
        prop_assert!(acceptable(&kling::aimlapi::parse_generation(answer.clone())));
        prop_assert!(acceptable(&kling::oxen::parse_generation(answer.clone())));
        // A generation record gives a charge or a protocol error.
        match kling::oxen::parse_charge(&answer) {
            Ok(_) | Err(Error::Protocol { .. }) => {}
            Err(other) => prop_assert!(false, "{other:?}"),
        }
        let event = kling::oxen::parse_event(&answer.to_string());
        if let Ok((_, status)) = &event {
            prop_assert!(acceptable(&Ok(status.clone())));
        }
    }

    #[test]
    fn any_bytes_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(acceptable(&kling::shortapi::parse_callback(&bytes)));
        let text = String::from_utf8_lossy(&bytes);
        let _ = kling::oxen::parse_event(&text);
        let mut parser = kling_http::sse::SseParser::default();
        for chunk in bytes.chunks(7) {
            let _ = parser.push(chunk);
        }
    }
}

#[test]
fn an_endless_event_line_is_dropped_and_the_stream_goes_on() {
    let mut parser = kling_http::sse::SseParser::default();
    let junk = vec![b'a'; 64 << 10];
    for _ in 0..160 {
        // 10 MB without a newline.
        assert!(parser.push(&junk).is_empty());
    }
    let events = parser.push(b"\n\nevent: media_generation_completed\ndata: {}\n\n");
    assert_eq!(
        events.last().map(|e| e.event.as_str()),
        Some("media_generation_completed")
    );
}
