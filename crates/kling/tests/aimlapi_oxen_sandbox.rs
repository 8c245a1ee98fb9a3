//! The client with the AI/ML API and Oxen adapters against the sandbox, in
//! real time with short jobs: every task with local files (inline on
//! AI/ML API, uploaded for Oxen), Oxen's events and their fallbacks,
//! cancel, failed jobs and the providers' refusals.

#![cfg(all(feature = "aimlapi", feature = "oxen"))]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kling::aimlapi::AimlApi;
use kling::oxen::Oxen;
use kling::upload::PostUploader;
use kling::{
    AnimateRequest, ComposeRequest, EditRequest, Element, Error, JobState, Media, Model,
    ReferRequest, Request, WaitOptions, WaitPolicy,
};
use kling_sandbox::{Config, Fault, FaultKind, Provider, Sandbox};

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

/// Checks every 50-100 ms; while Oxen pushes, every `while_pushing`.
fn quick(while_pushing: Duration) -> WaitOptions {
    WaitOptions::default()
        .policy(WaitPolicy {
            first_check: Duration::from_millis(50),
            growth: 1.5,
            max_interval: Duration::from_millis(100),
            jitter: 0.0,
            while_pushing,
        })
        .deadline(Duration::from_secs(20))
}

async fn sandbox(config: Config) -> Sandbox {
    Sandbox::start(config).await.unwrap()
}

fn aimlapi(sandbox: &Sandbox) -> kling::Client {
    kling::Client::new(AimlApi::with_base_url(&sandbox.url(Provider::AimlApi), "k".into()).unwrap())
}

fn oxen_adapter(sandbox: &Sandbox) -> Oxen {
    Oxen::with_base_url(&sandbox.url(Provider::Oxen), "k".into()).unwrap()
}

fn with_uploader(client: kling::Client, sandbox: &Sandbox) -> kling::Client {
    client.with_uploader(Arc::new(PostUploader::new(format!(
        "{}/uploads",
        sandbox.base_url()
    ))))
}

fn dog() -> Element {
    Element::new(Media::file(fixture("image.png"))).reference(url("dog-side.png"))
}

/// Every task on `client`; the edit's result is its own input, echoed.
async fn run_every_task(
    client: &kling::Client,
    tasks: Vec<(&str, Request)>,
    options: &WaitOptions,
) {
    let dir = tempfile::tempdir().unwrap();
    for (name, request) in tasks {
        let job = support::submit(client, &request).await.unwrap();
        let done = client.wait(&job, options).await.unwrap();
        let dest = dir.path().join(format!("{name}.mp4"));
        client.download(&job, &done, &dest).await.unwrap();
        if let Request::Edit(edit) = &request
            && let Media::File(input) = &edit.video
        {
            assert_eq!(
                std::fs::read(&dest).unwrap(),
                std::fs::read(input).unwrap(),
                "{name}: the input comes back byte for byte"
            );
        }
    }
}

#[tokio::test]
async fn aimlapi_runs_every_task_with_local_files_inline() {
    let sandbox = sandbox(Config::default().job_duration(Duration::from_millis(200))).await;
    let client = aimlapi(&sandbox);
    let local_video = Media::file(fixture("moov_at_end.mp4"));
    let tasks: Vec<(&str, Request)> = vec![
        (
            "edit",
            EditRequest::new(local_video.clone(), "Make @Video1 snowy around @Element1")
                .element(dog())
                .keep_audio(true)
                .into(),
        ),
        (
            "refer",
            ReferRequest::new(local_video, "Fly over @Image1")
                .image(Media::file(fixture("image.jpg")))
                .duration(10)
                .into(),
        ),
        (
            "animate",
            AnimateRequest::new(Media::file(fixture("image.webp")), "Bloom")
                .last(url("b.png"))
                .into(),
        ),
        (
            "compose",
            ComposeRequest::new("@Element1 in @Image1")
                .image(Media::file(fixture("image.png")))
                .element(dog())
                .into(),
        ),
    ];
    run_every_task(&client, tasks, &quick(Duration::from_secs(5))).await;
    let stats = sandbox.stats();
    assert_eq!(
        (stats["aimlapi"].creates, stats["aimlapi"].rejected),
        (4, 0)
    );
    assert_eq!(stats.uploads, 0, "nothing was uploaded: files went inline");
}

#[tokio::test]
async fn oxen_runs_every_task_and_learns_of_each_end_from_its_events() {
    let sandbox = sandbox(Config::default().job_duration(Duration::from_millis(200))).await;
    let client = with_uploader(kling::Client::new(oxen_adapter(&sandbox)), &sandbox);
    let tasks: Vec<(&str, Request)> = vec![
        (
            "edit-o1",
            EditRequest::new(
                Media::file(fixture("moov_at_end.mp4")),
                "Make @Video1 snowy",
            )
            .keep_audio(true)
            .into(),
        ),
        (
            "edit-o3",
            EditRequest::new(url("in.mp4"), "Make it snow on @Element1")
                .element(dog())
                .model(Model::O3)
                .into(),
        ),
        (
            "refer-o3",
            ReferRequest::new(url("in.mp4"), "Fly")
                .duration(8)
                .model(Model::O3)
                .into(),
        ),
        (
            "animate",
            AnimateRequest::new(Media::file(fixture("image.gif")), "Bloom")
                .last(url("b.png"))
                .into(),
        ),
        (
            "compose",
            ComposeRequest::new("@Image1")
                .image(Media::file(fixture("image.png")))
                .into(),
        ),
    ];
    // A first check after 10 s, then every 60 s while pushing: only events
    // can end these waits in time.
    let options = quick(Duration::from_secs(60)).policy(WaitPolicy {
        first_check: Duration::from_secs(10),
        max_interval: Duration::from_secs(60),
        ..quick(Duration::from_secs(60)).policy
    });
    run_every_task(&client, tasks, &options).await;
    let oxen = sandbox.stats()["oxen"];
    assert_eq!((oxen.creates, oxen.rejected), (5, 0));
    assert_eq!(oxen.status_queries, 0, "every end came as an event");
    assert_eq!(oxen.subscriptions, 1, "one stream served every job");
    assert_eq!(sandbox.stats().uploads, 4);
}

#[tokio::test]
async fn a_dropped_event_stream_falls_back_to_polling_and_reconnects() {
    let sandbox = sandbox(Config::default().job_duration(Duration::from_millis(1500))).await;
    let client = kling::Client::new(oxen_adapter(&sandbox));
    let job = support::submit(&client, &EditRequest::new(url("in.mp4"), "go").into())
        .await
        .unwrap();
    let cut = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sandbox.drop_event_streams();
    };
    let options = quick(Duration::from_secs(60));
    let (done, ()) = tokio::join!(client.wait(&job, &options), cut);
    assert!(matches!(done.unwrap().state, JobState::Succeeded { .. }));
    let oxen = sandbox.stats()["oxen"];
    assert!(oxen.status_queries >= 2, "polled after the drop: {oxen:?}");
    assert!(oxen.subscriptions >= 2, "listened again: {oxen:?}");
}

#[tokio::test]
async fn a_silent_event_stream_counts_as_lost() {
    let sandbox = sandbox(
        Config::default()
            .job_duration(Duration::from_millis(800))
            .keep_alive(Duration::from_secs(3600)),
    )
    .await;
    let adapter = oxen_adapter(&sandbox).silence_limit(Duration::from_millis(150));
    let client = kling::Client::new(adapter);
    let job = support::submit(&client, &EditRequest::new(url("in.mp4"), "go").into())
        .await
        .unwrap();
    let done = client
        .wait(&job, &quick(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(matches!(done.state, JobState::Succeeded { .. }));
    let oxen = sandbox.stats()["oxen"];
    assert!(oxen.status_queries >= 1, "{oxen:?}");
    assert!(oxen.subscriptions >= 2, "{oxen:?}");
}

#[tokio::test]
async fn an_oxen_job_can_be_cancelled() {
    let sandbox = sandbox(Config::default().job_duration(Duration::from_secs(60))).await;
    let client = kling::Client::new(oxen_adapter(&sandbox));
    let job = support::submit(&client, &EditRequest::new(url("in.mp4"), "go").into())
        .await
        .unwrap();
    client.cancel(&job).await.unwrap();
    // Oxen sends no event for a cancelled job: polling sees it.
    let err = client
        .wait(&job, &quick(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::JobCancelled { .. }), "{err}");
    assert_eq!(sandbox.stats()["oxen"].cancels, 1);

    let aimlapi = aimlapi(&sandbox);
    let err = aimlapi.cancel(&job).await.unwrap_err();
    assert!(err.is_unsupported(), "{err}");
}

#[tokio::test]
async fn failed_jobs_end_the_wait_with_their_reason_on_each_provider() {
    let sandbox = sandbox(
        Config::default()
            .job_duration(Duration::from_millis(200))
            .fault(Fault::new(FaultKind::FailJob)),
    )
    .await;
    let request = Request::from(EditRequest::new(url("in.mp4"), "go"));
    for client in [
        aimlapi(&sandbox),
        kling::Client::new(oxen_adapter(&sandbox)),
    ] {
        let job = support::submit(&client, &request).await.unwrap();
        let err = client
            .wait(&job, &quick(Duration::from_secs(60)))
            .await
            .unwrap_err();
        match &err {
            Error::JobFailed {
                job: failed,
                reason,
                ..
            } => {
                assert_eq!(**failed, job);
                assert!(!reason.is_empty());
            }
            other => panic!("{}: {other}", job.provider),
        }
    }
}

#[tokio::test]
async fn the_providers_refusals_surface_as_errors() {
    let sandbox = sandbox(Config::default()).await;
    let keyless = AimlApi::with_base_url(&sandbox.url(Provider::AimlApi), " ".into()).unwrap();
    let err = support::submit(
        &kling::Client::new(keyless),
        &EditRequest::new(url("in.mp4"), "go").into(),
    )
    .await
    .unwrap_err();
    assert!(err.is_auth(), "{err}");

    let unknown = kling::JobHandle::new("aimlapi", "nope:klingai/video-o1-image-to-video");
    let err = aimlapi(&sandbox).status(&unknown).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    let err = kling::Client::new(oxen_adapter(&sandbox))
        .status(&kling::JobHandle::new("oxen", "nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test]
async fn local_files_without_an_uploader_are_refused_before_sending() {
    let sandbox = sandbox(Config::default()).await;
    let client = kling::Client::new(oxen_adapter(&sandbox));
    let err = support::submit(
        &client,
        &EditRequest::new(Media::file(fixture("moov_at_end.mp4")), "go").into(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("oxen does not offer local files (video: "),
        "{text}"
    );
    assert!(text.contains("Client::with_uploader"), "{text}");
    assert!(
        text.contains("takes local files itself (aimlapi, fal)"),
        "{text}"
    );
    assert_eq!(sandbox.stats()["oxen"].creates, 0);
}
