//! A fault's `times` counts the requests it hit: each fault is rolled once
//! per request, a create included (whose job faults are rolled apart).

use std::time::Duration;

use kling_sandbox::{Config, Fault, FaultKind, Operation, Provider, Sandbox};
use serde_json::json;

#[tokio::test]
async fn a_fault_hits_as_many_creates_as_its_times() {
    for times in [1u32, 2, 3] {
        let sandbox = Sandbox::start(
            Config::default()
                .manual_clock()
                .fault(
                    Fault::new(FaultKind::Drop)
                        .times(times)
                        .provider(Provider::Oxen)
                        .on(Operation::Create),
                )
                // A job fault beside it is rolled on its own.
                .fault(Fault::new(FaultKind::FailJob).times(1)),
        )
        .await
        .unwrap();
        let client = kling_http::client_builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let body = json!({"model": "kling-video-o1-image-to-video", "prompt": "bloom",
                          "input_image": "https://media.example/a.png", "duration": 5});
        let mut dropped = 0;
        for _ in 0..5 {
            let answer = client
                .post(format!("{}/api/ai/queue", sandbox.url(Provider::Oxen)))
                .bearer_auth("k")
                .json(&body)
                .send()
                .await;
            if answer.is_err() {
                dropped += 1;
            }
        }
        assert_eq!(dropped, times);
        let oxen = sandbox.stats()["oxen"];
        assert_eq!(oxen.creates, 5);
        // The drops and the one failed job: each counted once.
        assert_eq!(oxen.faults, u64::from(times) + 1);
        sandbox.stop().await;
    }
}
