//! The library's main calls, with a distinctive key: it shows in no
//! `Debug`, no prepared call, no error.

#![cfg(all(feature = "shortapi", feature = "aimlapi", feature = "oxen"))]

use kling::{
    EditRequest, JobHandle, Media, Provider, Request, RetryPolicy, SecretString, WaitOptions,
};
use kling_http::ApiClient;

mod support;

const CANARY: &str = "sk-kling-canary-0b7e55d2";

fn key() -> SecretString {
    SecretString::from(CANARY)
}

fn clean(what: &str, text: &str) {
    assert!(!text.contains(CANARY), "{what}: {text}");
}

#[tokio::test]
async fn the_key_shows_in_no_debug_call_or_error() {
    // Nothing listens on port 9: every call fails, and says why.
    let base = "http://127.0.0.1:9";
    // One try per call: the errors matter here, not the retries.
    let api = |name| {
        ApiClient::new(name, base, Some(key()))
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            })
    };
    let providers: Vec<Box<dyn Provider>> = vec![
        Box::new(kling::shortapi::ShortApi::with_client(api("shortapi"))),
        Box::new(kling::aimlapi::AimlApi::with_client(api("aimlapi"))),
        Box::new(kling::oxen::Oxen::with_client(api("oxen"))),
    ];
    let request = Request::from(EditRequest::new(
        Media::url("https://media.example/in.mp4"),
        "Make it snow",
    ));
    for provider in providers {
        let name = provider.name();
        clean(name, &format!("{provider:?}"));
        let call = provider
            .prepare(&provider.capabilities().validate(&request).unwrap())
            .unwrap();
        clean(name, &format!("{call:?} {}", call.body));
        let client = kling::Client::from_arc(provider.into());
        clean(name, &format!("{client:?}"));
        let job = JobHandle::new(name, "j1");
        let errors = [
            support::submit(&client, &request).await.unwrap_err(),
            client.status(&job).await.unwrap_err(),
            client
                .wait(
                    &job,
                    &WaitOptions::default().deadline(std::time::Duration::from_millis(10)),
                )
                .await
                .unwrap_err(),
        ];
        for error in errors {
            let mut text = format!("{error} {error:?}");
            let mut cause = std::error::Error::source(&error);
            while let Some(inner) = cause {
                text.push_str(&inner.to_string());
                cause = inner.source();
            }
            clean(name, &text);
        }
    }
}
