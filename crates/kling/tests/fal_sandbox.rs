//! The client with the fal adapter against the sandbox's emulation of
//! fal: every task with local files through fal's storage (no uploader
//! set), each end learnt from the status stream, signed webhooks taken
//! only when fal's key signed them, cancel, and failures.

use std::path::PathBuf;
use std::time::Duration;

use kling::callback::{CallbackReceiver, Received};
use kling::fal::Fal;
use kling::provider::Provider as _;
use kling::{
    AnimateRequest, ComposeRequest, EditRequest, Element, Error, JobState, Media, Mode, Model,
    ReferRequest, Request, WaitOptions, WaitPolicy,
};
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

/// Checks every 50-100 ms; while fal pushes, every `while_pushing`.
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

fn fal(sandbox: &Sandbox) -> Fal {
    Fal::with_base_url(&sandbox.url(Provider::Fal), "fal-test".into()).unwrap()
}

#[tokio::test]
async fn every_task_runs_with_local_files_through_fals_storage_and_its_stream() {
    let sandbox = sandbox(Config::default().job_duration(Duration::from_millis(300))).await;
    // No uploader is set: fal's own storage takes the files.
    let client = kling::Client::new(fal(&sandbox));
    let video = Media::file(fixture("moov_at_end.mp4"));
    let dog = Element::new(Media::file(fixture("image.png"))).reference(url("dog-side.png"));
    let tasks: Vec<(&str, Request)> = vec![
        (
            "edit",
            EditRequest::new(video.clone(), "Make @Video1 snowy around @Element1")
                .element(dog.clone())
                .keep_audio(true)
                .into(),
        ),
        (
            "edit-o3-std",
            EditRequest::new(video.clone(), "Rain on @Video1")
                .model(Model::O3)
                .mode(Mode::Std)
                .into(),
        ),
        (
            "refer",
            ReferRequest::new(video.clone(), "Fly over @Image1")
                .image(Media::file(fixture("image.jpg")))
                .duration(4)
                .into(),
        ),
        (
            "animate",
            AnimateRequest::new(Media::file(fixture("image.webp")), "Bloom")
                .last(Media::file(fixture("image.gif")))
                .into(),
        ),
        (
            "compose",
            ComposeRequest::new("@Element1 in @Image1")
                .image(Media::file(fixture("image.png")))
                .element(dog)
                .into(),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    // Checks are 30 s apart while the stream is open: each end comes from it.
    let options = quick(Duration::from_secs(30));
    for (name, request) in &tasks {
        let job = support::submit(&client, request).await.unwrap();
        let done = client.wait(&job, &options).await.unwrap();
        let dest = dir.path().join(format!("{name}.mp4"));
        client.download(&job, &done, &dest).await.unwrap();
        if let Request::Edit(edit) = request
            && let Media::File(input) = &edit.video
        {
            assert_eq!(
                std::fs::read(&dest).unwrap(),
                std::fs::read(input).unwrap(),
                "{name}: the uploaded input comes back byte for byte"
            );
        }
    }
    let stats = sandbox.stats();
    let fal = stats["fal"];
    assert_eq!((fal.creates, fal.rejected), (5, 0), "{fal:?}");
    // Every file went up through fal's storage: 2 edits' videos, an
    // element's image, a refer's video and image, animate's 2 frames,
    // compose's image and element.
    assert_eq!(stats.uploads, 9);
    assert!(fal.subscriptions >= 5, "{fal:?}");
    // One first check per job (a job may end before its wait begins); the
    // rest came from the stream.
    assert!(fal.status_queries <= 5, "{fal:?}");
}

#[tokio::test]
async fn a_stream_that_drops_falls_back_to_polling() {
    let sandbox = sandbox(
        Config::default()
            .job_duration(Duration::from_millis(400))
            .fault(Fault::new(FaultKind::ServerError(503)).on(Operation::Events)),
    )
    .await;
    let client = kling::Client::new(fal(&sandbox));
    let job = support::submit(&client, &EditRequest::new(url("in.mp4"), "Snow").into())
        .await
        .unwrap();
    let done = client
        .wait(&job, &quick(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(matches!(done.state, JobState::Succeeded { .. }));
    assert_eq!(sandbox.stats()["fal"].subscriptions, 0);
}

#[tokio::test]
async fn a_job_cancelled_in_the_queue_ends_cancelled_and_a_second_cancel_is_refused() {
    let sandbox = sandbox(
        Config::default()
            .manual_clock()
            .job_duration(Duration::from_secs(60)),
    )
    .await;
    let fal = fal(&sandbox);
    let job = kling_sandbox::submit(&fal, &EditRequest::new(url("in.mp4"), "Snow").into())
        .await
        .unwrap();
    fal.cancel(&job).await.unwrap();
    assert_eq!(fal.status(&job).await.unwrap().state, JobState::Cancelled);
    let err = fal.cancel(&job).await.unwrap_err();
    assert!(err.to_string().contains("already completed"), "{err}");
    let err = fal
        .status(&kling::JobHandle::new("fal", "nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    // An id that is not fal's is refused before anything is sent.
    let before = sandbox.stats()["fal"].status_queries;
    let err = fal
        .status(&kling::JobHandle::new("fal", "../../other/app"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UUIDs"), "{err}");
    assert_eq!(sandbox.stats()["fal"].status_queries, before);
}

#[tokio::test]
async fn a_cancel_fal_takes_while_the_job_runs_is_not_taken_for_done() {
    let sandbox = sandbox(
        Config::default()
            .manual_clock()
            .job_duration(Duration::from_secs(60)),
    )
    .await;
    let fal = fal(&sandbox);
    let job = kling_sandbox::submit(&fal, &EditRequest::new(url("in.mp4"), "Snow").into())
        .await
        .unwrap();
    sandbox.advance(Duration::from_secs(20));
    // fal answers 202, but the request runs on: it may finish and be paid.
    let err = fal.cancel(&job).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("fal took the cancel, but the request is still running"),
        "{err}"
    );
    assert_eq!(fal.status(&job).await.unwrap().state, JobState::Running);
    let stats = sandbox.stats()["fal"];
    // The cancel, and the checks that it took: three, a second apart.
    assert_eq!((stats.cancels, stats.status_queries), (1, 4), "{stats:?}");
}

#[tokio::test]
async fn a_failed_job_ends_failed_with_fals_words() {
    let sandbox = sandbox(
        Config::default()
            .job_duration(Duration::from_millis(200))
            .fault(Fault::new(FaultKind::FailJob)),
    )
    .await;
    let client = kling::Client::new(fal(&sandbox));
    let job = support::submit(&client, &EditRequest::new(url("in.mp4"), "Snow").into())
        .await
        .unwrap();
    let err = client
        .wait(&job, &quick(Duration::from_secs(30)))
        .await
        .unwrap_err();
    match err {
        Error::JobFailed { reason, .. } => {
            assert_eq!(
                reason,
                "the sandbox was told to fail this job (fault `fail`)"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A receiver on a free loopback port.
async fn serve_receiver() -> CallbackReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver =
        CallbackReceiver::new(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(receiver.clone().serve(listener));
    receiver
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fals_signed_webhook_ends_the_wait_and_unsigned_calls_are_refused() {
    let sandbox = sandbox(Config::default().job_duration(Duration::from_millis(600))).await;
    let receiver = serve_receiver().await;
    // Polling only, so that the webhook alone can end the wait early.
    let client =
        kling::Client::new(fal(&sandbox).without_stream()).with_callbacks(receiver.clone());
    let request = Request::from(EditRequest::new(url("in.mp4"), "Snow"));
    let job = support::submit(&client, &request).await.unwrap();

    // Someone who has the URL but not fal's key: refused before the token
    // is looked at, whatever the body says.
    let http = reqwest::Client::new();
    let forged = http
        .post(format!("{}/fal?token=0000", receiver.public_url()))
        .header("x-fal-webhook-request-id", job.id.as_str())
        .header("x-fal-webhook-user-id", "someone")
        .header(
            "x-fal-webhook-timestamp",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                .to_string(),
        )
        .header("x-fal-webhook-signature", "ab".repeat(64))
        .body(r#"{"status":"OK"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(receiver.receive("fal", "0000"), Received::Unverified);

    let started = std::time::Instant::now();
    let done = client
        .wait(
            &job,
            &quick(Duration::from_secs(30)).policy(WaitPolicy {
                first_check: Duration::from_secs(30),
                ..WaitPolicy::default()
            }),
        )
        .await
        .unwrap();
    assert!(matches!(done.state, JobState::Succeeded { .. }));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The sandbox counts a webhook once our answer reaches it.
    for _ in 0..100 {
        if sandbox.stats()["fal"].callbacks == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fal = sandbox.stats()["fal"];
    assert_eq!((fal.callbacks, fal.status_queries), (1, 1), "{fal:?}");
}

#[tokio::test]
async fn a_storage_that_fails_creates_nothing_and_says_so() {
    let sandbox = sandbox(
        Config::default().fault(Fault::new(FaultKind::ServerError(500)).on(Operation::Upload)),
    )
    .await;
    // Two tries of the upload's start, both refused.
    let api = kling::ApiClient::new("fal", &sandbox.url(Provider::Fal), Some("k".into()))
        .unwrap()
        .with_retry(kling::RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        });
    let client = kling::Client::new(Fal::with_client(api));
    let err = support::submit(
        &client,
        &EditRequest::new(Media::file(fixture("moov_at_end.mp4")), "Snow").into(),
    )
    .await
    .unwrap_err();
    assert!(!err.may_have_been_sent(), "{err:?}");
    assert!(
        err.to_string()
            .contains("fal's storage failed; no job was created"),
        "{err}"
    );
    assert!(matches!(err, Error::Transport { .. }));
    let fal = sandbox.stats()["fal"];
    assert_eq!((fal.creates, fal.faults), (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_90_mib_goes_up_in_parts_and_comes_back_whole() {
    let sandbox = sandbox(Config::default().job_duration(Duration::from_millis(100))).await;
    let client = kling::Client::new(fal(&sandbox));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("large.mp4");
    // 95 MiB: ten parts of 10 MiB, the last shorter.
    kling_sandbox::write_padded_video(&input, 95 << 20).unwrap();
    let job = support::submit(
        &client,
        &EditRequest::new(Media::file(&input), "Snow").into(),
    )
    .await
    .unwrap();
    let done = client
        .wait(&job, &quick(Duration::from_secs(30)))
        .await
        .unwrap();
    let out = dir.path().join("out.mp4");
    client.download(&job, &done, &out).await.unwrap();
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        95 << 20,
        "the parts were put together in order"
    );
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&input).unwrap());
    assert_eq!(sandbox.stats().uploads, 1);
}
