//! Oxen's charges and the lookup of a lost create, against the sandbox:
//! `GET /api/ai/generations/{id}` for what a job cost, and
//! `GET /api/ai/generations` to find the job a dropped create made.

use std::time::{Duration, SystemTime};

use kling_core::provider::{Found, LostCreate, Provider as _};
use kling_core::{
    AnimateRequest, Charge, ComposeRequest, EditRequest, Error, JobHandle, Media, Model,
    ReferRequest, Request,
};
use kling_oxen::{DESCRIPTOR, Oxen};
use kling_sandbox::{Config, Fault, FaultKind, Operation, Provider, Sandbox};
use serde_json::Value;

/// `request`, checked for `provider`.
fn checked(
    provider: &impl kling_core::provider::Provider,
    request: &kling_core::Request,
) -> kling_core::Checked {
    provider.capabilities().validate(request).unwrap()
}

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

fn oxen(sandbox: &Sandbox) -> Oxen {
    Oxen::with_base_url(&sandbox.url(Provider::Oxen), "k".into())
        .unwrap()
        .without_events()
}

/// A sandbox on a frozen clock whose jobs take 8 s, with `faults`.
async fn sandbox(faults: &[Fault]) -> Sandbox {
    let config = faults.iter().fold(
        Config::default()
            .manual_clock()
            .job_duration(Duration::from_secs(8)),
        |config, fault| config.fault(*fault),
    );
    Sandbox::start(config).await.unwrap()
}

/// The first `n` creates on Oxen are dropped after the job is made.
fn dropped_creates(n: u32) -> Fault {
    Fault::new(FaultKind::Drop)
        .times(n)
        .provider(Provider::Oxen)
        .on(Operation::Create)
}

/// The ids of the sandbox's Oxen generations, newest first, read over HTTP.
async fn sandbox_generations(sandbox: &Sandbox) -> Vec<String> {
    let page: Value = kling_http::client_builder()
        .build()
        .unwrap()
        .get(format!(
            "{}/api/ai/generations?page_size=1000",
            sandbox.url(Provider::Oxen)
        ))
        .bearer_auth("k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["generation_id"].as_str().unwrap().to_owned())
        .collect()
}

fn refer(prompt: &str) -> Request {
    ReferRequest::new(url("in.mp4"), prompt)
        .model(Model::O3)
        .image(url("a.png"))
        .duration(7)
        .into()
}

#[tokio::test]
async fn the_charge_is_the_generation_records_cost() {
    let sandbox = sandbox(&[]).await;
    let oxen = oxen(&sandbox);
    let cases: Vec<(Request, u64)> = vec![
        (refer("Fly over @Video1"), 7),
        (
            AnimateRequest::new(url("a.png"), "Bloom")
                .duration(10)
                .into(),
            10,
        ),
        (
            ComposeRequest::new("Walk in @Image1")
                .image(url("a.png"))
                .duration(5)
                .into(),
            5,
        ),
    ];
    let mut jobs = Vec::new();
    for (request, seconds) in cases {
        let job = kling_sandbox::submit(&oxen, &request).await.unwrap();
        // Not charged while it runs.
        assert_eq!(oxen.charge(&job).await.unwrap(), None);
        jobs.push((job, seconds));
    }
    sandbox.advance(Duration::from_secs(8));
    for (job, seconds) in &jobs {
        let charge = oxen.charge(job).await.unwrap();
        // The sandbox's own rate: $0.10 per second of video.
        assert_eq!(
            charge.and_then(Charge::usd).map(kling_core::Usd::micros),
            Some(100_000 * seconds),
            "{job}"
        );
    }
    let unknown = oxen
        .charge(&JobHandle::new(
            "oxen",
            "00000000-0000-4000-a000-000000000000",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            unknown,
            Error::Rejected {
                status: Some(404),
                ..
            }
        ),
        "{unknown:?}"
    );
    assert!(sandbox.stats()["oxen"].lookups >= 7);
    sandbox.stop().await;
}

#[tokio::test]
async fn a_dropped_create_is_found_again() {
    const { assert!(DESCRIPTOR.capabilities.lookup) };
    let sandbox = sandbox(&[dropped_creates(1)]).await;
    let oxen = oxen(&sandbox);
    let request = refer("Fly over @Video1 at dawn");
    let sent_at = SystemTime::now();
    let err = kling_sandbox::submit(&oxen, &request).await.unwrap_err();
    assert!(err.may_have_been_sent(), "{err:?}");
    assert_eq!(sandbox.stats()["oxen"].creates, 1);

    let found = oxen
        .find_lost(&LostCreate::new(&checked(&oxen, &request), sent_at, &[]))
        .await
        .unwrap();
    let Found::Job(job) = found else {
        panic!("not found: {found:?}")
    };
    // The job the dropped create made, as the sandbox has it.
    assert_eq!(
        sandbox_generations(&sandbox).await,
        std::slice::from_ref(&job.id)
    );
    assert_eq!(job.provider, "oxen");
    assert_eq!(job.model.as_deref(), Some("kling-video-o3-omni"));
    let created = job.created_at.expect("created_at is set");
    let skew = Duration::from_secs(5);
    assert!(created + skew >= sent_at && created <= SystemTime::now() + skew);
    // It is a job like any other: its status and charge are there.
    assert_eq!(oxen.status(&job).await.unwrap().state.name(), "queued");

    // Once known, it is not found again.
    let known = [job.id.clone()];
    assert_eq!(
        oxen.find_lost(&LostCreate::new(&checked(&oxen, &request), sent_at, &known))
            .await
            .unwrap(),
        Found::NotFound
    );
    // Another request, or another model, matches nothing.
    for other in [
        refer("Fly over @Video1 at dusk"),
        ReferRequest::new(url("in.mp4"), "Fly over @Video1 at dawn")
            .model(Model::O3)
            .image(url("a.png"))
            .duration(8)
            .into(),
        EditRequest::new(url("in.mp4"), "Fly over @Video1 at dawn").into(),
    ] {
        assert_eq!(
            oxen.find_lost(&LostCreate::new(&checked(&oxen, &other), sent_at, &[]))
                .await
                .unwrap(),
            Found::NotFound,
            "{other:?}"
        );
    }
    // A create sent well after the job was enqueued is not this one.
    let later = sent_at + Duration::from_secs(3600);
    assert_eq!(
        oxen.find_lost(&LostCreate::new(&checked(&oxen, &request), later, &[]))
            .await
            .unwrap(),
        Found::NotFound
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn the_earliest_unknown_match_is_found_among_identical_creates() {
    // The first two creates are dropped; then the same request succeeds,
    // and other requests follow.
    let sandbox = sandbox(&[dropped_creates(2)]).await;
    let oxen = oxen(&sandbox);
    let request = Request::from(
        EditRequest::new(url("in.mp4"), "Make @Video1 snowy")
            .image(url("snow.png"))
            .keep_audio(true),
    );
    let sent_at = SystemTime::now();
    assert!(
        kling_sandbox::submit(&oxen, &request)
            .await
            .unwrap_err()
            .may_have_been_sent()
    );
    assert!(
        kling_sandbox::submit(&oxen, &request)
            .await
            .unwrap_err()
            .may_have_been_sent()
    );
    let answered = kling_sandbox::submit(&oxen, &request).await.unwrap();
    // Enough other generations of the model that the lost ones are on a
    // later page, newest first.
    for n in 0..120 {
        kling_sandbox::submit(
            &oxen,
            &EditRequest::new(url("in.mp4"), format!("Make @Video1 rainy, take {n}")).into(),
        )
        .await
        .unwrap();
    }
    // Newest first: the other requests, the answered one, then the lost.
    let all = sandbox_generations(&sandbox).await;
    assert_eq!(all.len(), 123);
    let (first_lost, second_lost) = (all[122].clone(), all[121].clone());
    assert_eq!(all[120], answered.id);

    let find = |known: Vec<String>| {
        let oxen = oxen.clone();
        let request = request.clone();
        async move {
            oxen.find_lost(&LostCreate::new(&checked(&oxen, &request), sent_at, &known))
                .await
                .unwrap()
        }
    };
    let found_id = |found: Found| match found {
        Found::Job(job) => job.id,
        other => panic!("{other:?}"),
    };
    assert_eq!(found_id(find(vec![answered.id.clone()]).await), first_lost);
    assert_eq!(
        found_id(find(vec![answered.id.clone(), first_lost.clone()]).await),
        second_lost
    );
    assert_eq!(
        find(vec![answered.id.clone(), first_lost, second_lost]).await,
        Found::NotFound
    );
    // Two pages of 100 were read for each lookup.
    let before = sandbox.stats()["oxen"].lookups;
    find(vec![]).await;
    assert_eq!(sandbox.stats()["oxen"].lookups - before, 2);
    sandbox.stop().await;
}

#[tokio::test]
async fn a_lookup_that_fails_says_so() {
    let sandbox = sandbox(&[Fault::new(FaultKind::ServerError(503))
        .provider(Provider::Oxen)
        .on(Operation::Lookup)])
    .await;
    let oxen = Oxen::with_client(
        kling_http::ApiClient::new("oxen", &sandbox.url(Provider::Oxen), Some("k".into()))
            .unwrap()
            .with_retry(kling_http::RetryPolicy::NONE),
    )
    .without_events();
    let request = refer("Fly");
    let err = oxen
        .find_lost(&LostCreate::new(
            &checked(&oxen, &request),
            SystemTime::now(),
            &[],
        ))
        .await
        .unwrap_err();
    assert!(
        !err.may_have_been_sent(),
        "a lookup creates nothing: {err:?}"
    );
    assert!(sandbox.stats()["oxen"].faults >= 1);
    // A request that could not have been sent is never checked, so it can
    // never be looked up: local rules still apply.
    let bad = Request::from(ReferRequest::new(url("in.mp4"), "Fly").duration(30));
    assert!(
        oxen.capabilities()
            .validate(&bad)
            .unwrap_err()
            .is_invalid_request()
    );
    sandbox.stop().await;
}
