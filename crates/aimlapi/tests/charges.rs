//! What AI/ML API says a job used comes back on its status: the
//! generation's `meta.usage.credits_used`, as credits, against the sandbox.

use std::time::Duration;

use kling_aimlapi::AimlApi;
use kling_core::provider::Provider as _;
use kling_core::{Charge, ComposeRequest, Credits, JobState, Media, ReferRequest, Request};
use kling_sandbox::{Config, Provider, Sandbox};
use serde_json::Value;

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

#[tokio::test]
async fn the_status_carries_the_credits_used() {
    let sandbox = Sandbox::start(
        Config::default()
            .manual_clock()
            .job_duration(Duration::from_secs(8)),
    )
    .await
    .unwrap();
    let aimlapi = AimlApi::with_base_url(&sandbox.url(Provider::AimlApi), "k".into()).unwrap();
    let requests: Vec<Request> = vec![
        ReferRequest::new(url("in.mp4"), "Fly over @Video1")
            .duration(10)
            .into(),
        ComposeRequest::new("Walk through @Image1")
            .image(url("a.png"))
            .duration(5)
            .into(),
    ];
    let mut jobs = Vec::new();
    for request in &requests {
        let job = kling_sandbox::submit(&aimlapi, request).await.unwrap();
        // Nothing is used while queued: no charge yet.
        let queued = aimlapi.status(&job).await.unwrap();
        assert_eq!(queued.state, JobState::Queued);
        assert_eq!(queued.charge, None);
        jobs.push(job);
    }
    sandbox.advance(Duration::from_secs(8));
    for job in &jobs {
        let done = aimlapi.status(job).await.unwrap();
        assert!(matches!(done.state, JobState::Succeeded { .. }), "{done:?}");
        // Whatever the sandbox reported, read exactly from its answer.
        let reported = &done.raw["meta"]["usage"]["credits_used"];
        let used = reported.as_u64().expect("a whole number of credits");
        assert!(used > 0);
        assert_eq!(
            done.charge,
            Some(Charge::Credits(Credits::from_millionths(used * 1_000_000)))
        );
        assert_ne!(done.raw["meta"], Value::Null);
    }
    // Longer jobs use more: the 10 s reference, more than the 5 s compose.
    let used: Vec<Option<Credits>> = {
        let mut used = Vec::new();
        for job in &jobs {
            used.push(
                aimlapi
                    .status(job)
                    .await
                    .unwrap()
                    .charge
                    .and_then(Charge::credits),
            );
        }
        used
    };
    assert!(used[0] > used[1], "{used:?}");
    sandbox.stop().await;
}
