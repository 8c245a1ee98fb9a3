//! The client and the ShortAPI adapter against the sandbox: every task,
//! the provider's refusals, retries, a dropped create, an expired result
//! URL, and the wait policy on virtual time.

#![cfg(feature = "shortapi")]

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kling::Provider as _;
use kling::shortapi::ShortApi;
use kling::upload::PostUploader;
use kling::{
    AnimateRequest, ComposeRequest, EditRequest, Element, JobState, Media, Model, ReferRequest,
    Request, WaitOptions,
};
use kling_http::{ApiClient, Clock, RetryPolicy};
use kling_sandbox::{Config, Fault, FaultKind, Operation, Provider, Sandbox};

mod support;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/fixtures"
    ))
    .join(name)
}

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

/// Time that passes only when someone sleeps, moving the sandbox's clock
/// with it.
#[derive(Debug)]
struct VirtualClock {
    now: Mutex<Duration>,
    sandbox: Arc<Sandbox>,
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        *self.now.lock().unwrap() += duration;
        self.sandbox.advance(duration);
        Box::pin(async {})
    }
}

struct Setup {
    sandbox: Arc<Sandbox>,
    clock: Arc<VirtualClock>,
    client: kling::Client,
}

/// A sandbox on a frozen clock, and a client whose waits and retries move it.
async fn setup(config: Config, job: Duration) -> Setup {
    let sandbox = Arc::new(
        Sandbox::start(config.manual_clock().job_duration(job))
            .await
            .unwrap(),
    );
    let clock = Arc::new(VirtualClock {
        now: Mutex::new(Duration::ZERO),
        sandbox: Arc::clone(&sandbox),
    });
    let api = ApiClient::new(
        "shortapi",
        &sandbox.url(Provider::ShortApi),
        Some("sandbox-key".into()),
    )
    .unwrap()
    .with_clock(clock.clone())
    .with_retry(RetryPolicy::default());
    let client = kling::Client::new(ShortApi::with_client(api))
        .with_uploader(Arc::new(PostUploader::new(format!(
            "{}/uploads",
            sandbox.base_url()
        ))))
        .with_clock(clock.clone())
        .with_seed(1);
    Setup {
        sandbox,
        clock,
        client,
    }
}

#[tokio::test]
async fn every_task_completes_and_downloads_a_real_video() {
    let Setup {
        sandbox, client, ..
    } = setup(Config::default(), Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let local = fixture("moov_at_end.mp4");
    let requests: Vec<(&str, Request)> = vec![
        (
            "edit-o1-local",
            EditRequest::new(Media::file(&local), "Make @Video1 snowy")
                .keep_audio(true)
                .into(),
        ),
        (
            "edit-o3",
            EditRequest::new(url("in.mp4"), "Make it snow")
                .model(Model::O3)
                .into(),
        ),
        (
            "refer-o1",
            ReferRequest::new(url("in.mp4"), "Fly over @Image1")
                .image(url("a.png"))
                .duration(10)
                .into(),
        ),
        (
            "refer-o3",
            ReferRequest::new(url("in.mp4"), "Fly")
                .model(Model::O3)
                .into(),
        ),
        (
            "animate",
            AnimateRequest::new(url("a.png"), "Bloom")
                .last(url("b.png"))
                .duration(3)
                .into(),
        ),
        (
            "compose",
            ComposeRequest::new("@Element1 in @Image1")
                .image(url("a.png"))
                .element(Element::new(url("f.png")).reference(url("s.png")))
                .into(),
        ),
    ];
    for (name, request) in &requests {
        let job = support::submit(&client, request).await.unwrap();
        assert_eq!(job.provider, "shortapi");
        let done = client.wait(&job, &WaitOptions::default()).await.unwrap();
        let dest = dir.path().join(format!("{name}.mp4"));
        let size = client.download(&job, &done, &dest).await.unwrap();
        let bytes = std::fs::read(&dest).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert!(!kling_http::part_path(&dest).exists());
        if *name == "edit-o1-local" {
            // The uploaded input comes back as the result, byte for byte.
            assert_eq!(bytes, std::fs::read(&local).unwrap());
        }
        assert!(matches!(
            kling::probe::probe_file(&dest).unwrap(),
            kling::probe::Probed::Video(_)
        ));
    }
    let stats = sandbox.stats()["shortapi"];
    assert_eq!(
        (stats.creates, stats.rejected, stats.downloads_with_auth),
        (6, 0, 0)
    );
    assert_eq!(sandbox.stats().uploads, 1);
}

#[tokio::test]
async fn the_providers_refusals_surface_as_its_errors() {
    let Setup { sandbox, .. } = setup(Config::default(), Duration::from_secs(5)).await;
    let shortapi = ShortApi::with_base_url(&sandbox.url(Provider::ShortApi), "k".into()).unwrap();
    let request = ReferRequest::new(url("in.mp4"), "go").into();
    let mut call = shortapi
        .prepare(&shortapi.capabilities().validate(&request).unwrap())
        .unwrap();
    // O1 wants its duration as a string; an integer is refused with code != 0.
    call.body["args"]["duration"] = serde_json::json!(5);
    let err = shortapi.send(&call).await.unwrap_err();
    assert!(!err.may_have_been_sent());
    let message = err.to_string();
    assert!(
        message.starts_with("shortapi refused the request: invalid args: /args/duration"),
        "{message}"
    );

    let unknown = shortapi
        .status(&kling::JobHandle::new("shortapi", "no-such-job"))
        .await
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "shortapi refused the request: job \"no-such-job\" not found"
    );

    let keyless = ShortApi::with_base_url(&sandbox.url(Provider::ShortApi), " ".into()).unwrap();
    let err = support::submit(
        &kling::Client::new(keyless),
        &EditRequest::new(url("in.mp4"), "go").into(),
    )
    .await
    .unwrap_err();
    assert!(err.is_auth(), "{err}");
}

#[tokio::test]
async fn rate_limits_and_server_errors_on_status_are_retried() {
    let config = Config::default()
        .fault(
            Fault::new(FaultKind::RateLimit)
                .times(2)
                .on(Operation::Status),
        )
        .fault(
            Fault::new(FaultKind::ServerError(503))
                .times(2)
                .on(Operation::Status),
        );
    let Setup {
        sandbox,
        client,
        clock,
    } = setup(config, Duration::from_secs(30)).await;
    let job = support::submit(&client, &EditRequest::new(url("in.mp4"), "go").into())
        .await
        .unwrap();
    let done = client.wait(&job, &WaitOptions::default()).await.unwrap();
    assert!(matches!(done.state, JobState::Succeeded { .. }));
    let stats = sandbox.stats()["shortapi"];
    assert_eq!(stats.faults, 4);
    assert!(clock.now() >= Duration::from_secs(30));
}

#[tokio::test]
async fn a_dropped_create_says_the_job_may_exist_and_is_not_retried() {
    let config = Config::default().fault(Fault::new(FaultKind::Drop).on(Operation::Create));
    let Setup {
        sandbox, client, ..
    } = setup(config, Duration::from_secs(5)).await;
    let err = support::submit(&client, &EditRequest::new(url("in.mp4"), "go").into())
        .await
        .unwrap_err();
    assert!(err.may_have_been_sent(), "{err}");
    let message = err.to_string();
    assert!(message.contains("a job may exist"), "{message}");
    assert!(
        message.contains("POST http://127.0.0.1:"),
        "the attempt is identified: {message}"
    );
    assert_eq!(
        sandbox.stats()["shortapi"].creates,
        1,
        "exactly one create reached the sandbox"
    );
}

#[tokio::test]
async fn an_expired_result_url_is_refreshed_by_one_status_query() {
    let config = Config::default().fault(Fault::new(FaultKind::ExpireUrl));
    let Setup {
        sandbox, client, ..
    } = setup(config, Duration::from_secs(20)).await;
    let job = support::submit(&client, &EditRequest::new(url("in.mp4"), "go").into())
        .await
        .unwrap();
    let done = client.wait(&job, &WaitOptions::default()).await.unwrap();
    let polls = sandbox.stats()["shortapi"].status_queries;
    let dir = tempfile::tempdir().unwrap();
    client
        .download(&job, &done, &dir.path().join("out.mp4"))
        .await
        .unwrap();
    let stats = sandbox.stats()["shortapi"];
    assert_eq!(stats.status_queries, polls + 1, "one fresh status query");
    assert_eq!(stats.downloads, 2, "the expired URL, then the fresh one");
}

#[tokio::test]
async fn the_wait_policy_on_a_240_second_job() {
    let Setup {
        sandbox,
        client,
        clock,
    } = setup(Config::default(), Duration::from_secs(240)).await;
    let job = support::submit(&client, &EditRequest::new(url("in.mp4"), "go").into())
        .await
        .unwrap();
    client.wait(&job, &WaitOptions::default()).await.unwrap();
    let requests = sandbox.stats()["shortapi"].status_queries;
    let seen_after = clock.now().saturating_sub(Duration::from_secs(240));
    println!(
        "wait policy, 240 s job: {requests} status requests, completion seen {seen_after:?} after the job ended"
    );
    assert!(requests <= 30, "{requests} status requests");
    assert!(
        seen_after <= Duration::from_secs(10),
        "seen {seen_after:?} late"
    );
}

#[tokio::test]
async fn the_deadline_ends_a_wait_with_the_job_in_the_error() {
    let Setup { client, .. } = setup(Config::default(), Duration::from_secs(600)).await;
    let job = support::submit(&client, &EditRequest::new(url("in.mp4"), "go").into())
        .await
        .unwrap();
    let err = client
        .wait(
            &job,
            &WaitOptions::default().deadline(Duration::from_secs(60)),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.job(), Some(&job));
}

#[tokio::test]
async fn estimates_come_from_the_price_table() {
    let Setup { client, .. } = setup(Config::default(), Duration::from_secs(5)).await;
    let edit = Request::from(EditRequest::new(
        Media::file(fixture("moov_at_end.mp4")),
        "go",
    ));
    // 5.04 s rounds to 5 s, at $0.143/s in pro.
    assert_eq!(
        support::estimate(&client, &edit).unwrap().to_string(),
        "$0.715 (5 s at $0.143/s)"
    );
    let remote = Request::from(EditRequest::new(url("in.mp4"), "go"));
    assert!(support::estimate(&client, &remote).unwrap().usd.is_none());
    let refer = Request::from(
        ReferRequest::new(url("in.mp4"), "go")
            .duration(10)
            .mode(kling::Mode::Std),
    );
    assert_eq!(
        support::estimate(&client, &refer).unwrap().to_string(),
        "$1.10 (10 s at $0.11/s)"
    );
    let animate = Request::from(AnimateRequest::new(url("a.png"), "go").duration(10));
    assert_eq!(
        support::estimate(&client, &animate).unwrap().to_string(),
        "$0.10 (10 s at $0.10/request)"
    );
}
