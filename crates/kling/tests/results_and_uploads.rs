//! Results accepted only as intact videos, downloads that cannot hang, and
//! uploads that never claim a job may exist: the client against the
//! sandbox's `html`, `stall` and `trickle` faults, and a closed port.

#![cfg(feature = "shortapi")]

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kling::shortapi::ShortApi;
use kling::upload::{PostUploader, Uploader as _};
use kling::{
    Delivery, DownloadError, DownloadOptions, EditRequest, Error, JobHandle, JobStatus, Media,
    WaitOptions,
};
use kling_http::{ApiClient, Clock, part_path};
use kling_sandbox::{Config, Fault, FaultKind, Operation, Provider, Sandbox};

mod support;

/// Time that passes only when someone sleeps, moving the sandbox's clock
/// with it: waits and retry backoffs take no real time.
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

/// A succeeded job on a sandbox with `faults`, and the client that made it.
async fn succeeded_job(faults: &[Fault]) -> (Arc<Sandbox>, kling::Client, JobHandle, JobStatus) {
    let config = faults
        .iter()
        .fold(Config::default(), |config, fault| config.fault(*fault));
    let sandbox = Arc::new(
        Sandbox::start(config.manual_clock().job_duration(Duration::from_secs(20)))
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
    .with_clock(clock.clone());
    let client = kling::Client::new(ShortApi::with_client(api))
        .with_clock(clock)
        .with_seed(1);
    let job = support::submit(
        &client,
        &EditRequest::new(Media::url("https://media.example/in.mp4"), "go").into(),
    )
    .await
    .unwrap();
    let done = client.wait(&job, &WaitOptions::default()).await.unwrap();
    (sandbox, client, job, done)
}

fn download_error(err: &Error) -> &DownloadError {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<DownloadError>())
        .unwrap_or_else(|| panic!("no DownloadError behind {err:?}"))
}

fn is_video(path: &Path) -> bool {
    matches!(
        kling::probe::probe_file(path),
        Ok(kling::probe::Probed::Video(_))
    )
}

#[tokio::test]
async fn an_html_result_is_refused_after_one_fresh_url() {
    let html = Fault::new(FaultKind::Html).on(Operation::Download);
    let (sandbox, client, job, done) = succeeded_job(&[html]).await;
    let polls = sandbox.stats()["shortapi"].status_queries;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let err = client.download(&job, &done, &dest).await.unwrap_err();
    assert!(!err.may_have_been_sent(), "{err}");
    assert!(
        matches!(
            err,
            Error::Transport {
                delivery: Delivery::NotSent,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&job.to_string()), "{err}");
    assert!(
        matches!(download_error(&err), DownloadError::NotAVideo { detail } if detail.contains("text/html")),
        "{err:?}"
    );
    assert!(!dest.exists(), "the HTML page is not the result");
    assert!(!part_path(&dest).exists(), "nor kept as a start");
    let stats = sandbox.stats()["shortapi"];
    assert_eq!(stats.status_queries, polls + 1, "one fresh status query");
    assert_eq!(stats.downloads, 2, "the first URL, then the fresh one");
}

#[tokio::test]
async fn an_html_result_once_is_replaced_by_the_video() {
    let html = Fault::new(FaultKind::Html).on(Operation::Download).times(1);
    let (sandbox, client, job, done) = succeeded_job(&[html]).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let size = client.download(&job, &done, &dest).await.unwrap();
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), size);
    assert!(is_video(&dest));
    assert_eq!(sandbox.stats()["shortapi"].downloads, 2);
}

#[tokio::test]
async fn a_stalled_result_ends_at_the_stall_limit_with_its_part_kept() {
    let stall = Fault::new(FaultKind::Stall).on(Operation::Download);
    let (_sandbox, client, job, done) = succeeded_job(&[stall]).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let options = DownloadOptions::default().stall(Duration::from_secs(1));
    let started = Instant::now();
    let err = client
        .download_with_options(&job, &done, &dest, &options, &|_, _| {})
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "ended after {took:?}");
    assert!(!err.may_have_been_sent(), "{err}");
    assert!(
        matches!(
            download_error(&err),
            DownloadError::Stalled { kept: 64, after } if *after == Duration::from_secs(1)
        ),
        "{err:?}"
    );
    assert_eq!(std::fs::metadata(part_path(&dest)).unwrap().len(), 64);
    assert!(!dest.exists());
}

#[tokio::test]
async fn the_overall_deadline_is_a_timeout_on_the_job() {
    // 1 KiB every 100 ms: never stalls, but takes about 2 s.
    let trickle = Fault::new(FaultKind::Trickle).on(Operation::Download);
    let (_sandbox, client, job, done) = succeeded_job(&[trickle]).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let options = DownloadOptions::default()
        .stall(Duration::from_secs(10))
        .deadline(Duration::from_millis(500));
    let started = Instant::now();
    let err = client
        .download_with_options(&job, &done, &dest, &options, &|_, _| {})
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    match &err {
        Error::Timeout {
            job: Some(timed_out),
            after,
            ..
        } => {
            assert_eq!(**timed_out, job);
            assert_eq!(*after, Duration::from_millis(500));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(!err.may_have_been_sent(), "{err}");
    assert!(std::fs::metadata(part_path(&dest)).unwrap().len() > 0);
    assert!(!dest.exists());
    // The next try resumes and completes.
    client.download(&job, &done, &dest).await.unwrap();
    assert!(is_video(&dest));
}

#[tokio::test]
async fn two_downloads_of_one_result_write_it_once_and_intact() {
    let trickle = Fault::new(FaultKind::Trickle).on(Operation::Download);
    let (sandbox, client, job, done) = succeeded_job(&[trickle]).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let first = {
        let (client, job, done, dest) = (client.clone(), job.clone(), done.clone(), dest.clone());
        tokio::spawn(async move { client.download(&job, &done, &dest).await })
    };
    let part = part_path(&dest);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "the first download never began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = client.download(&job, &done, &dest).await.unwrap_err();
    assert!(
        matches!(download_error(&err), DownloadError::Busy { .. }),
        "{err:?}"
    );
    assert!(!err.may_have_been_sent());
    let size = first.await.unwrap().unwrap();
    // The served result: the sandbox's sample, fetched whole without faults.
    let url = match &done.state {
        kling::JobState::Succeeded { outputs, .. } => outputs[0].clone(),
        other => panic!("{other:?}"),
    };
    let served = kling_http::client_builder()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(size, served.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), served, "byte for byte");
    assert_eq!(sandbox.stats()["shortapi"].downloads_with_auth, 0);
}

#[tokio::test]
async fn a_destination_that_is_a_directory_or_a_fifo_is_left_as_it_was() {
    let (sandbox, client, job, done) = succeeded_job(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let directory = dir.path().join("out.mp4");
    std::fs::create_dir(&directory).unwrap();
    let err = client.download(&job, &done, &directory).await.unwrap_err();
    assert!(
        matches!(download_error(&err), DownloadError::NotARegularFile { path, .. } if *path == directory),
        "{err:?}"
    );
    assert!(directory.is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let fifo = dir.path().join("fifo.mp4");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let err = client.download(&job, &done, &fifo).await.unwrap_err();
        assert!(
            matches!(
                download_error(&err),
                DownloadError::NotARegularFile {
                    found: "a FIFO",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );
    }
    assert_eq!(
        sandbox.stats()["shortapi"].downloads,
        0,
        "nothing was fetched"
    );
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn assert_upload_not_sent(err: &Error) {
    assert!(!err.may_have_been_sent(), "{err}");
    assert!(
        matches!(
            err,
            Error::Transport {
                delivery: Delivery::NotSent,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no job was created"), "{err}");
}

#[tokio::test]
async fn an_upload_that_cannot_connect_created_nothing() {
    let port = closed_port();
    let uploader = PostUploader::new(format!("http://127.0.0.1:{port}/uploads?token=hunter2"));
    let err = uploader
        .upload(&Media::bytes(&b"0123456789"[..], Some("video/mp4")))
        .await
        .unwrap_err();
    assert_upload_not_sent(&err);
    let message = err.to_string();
    assert!(
        message.contains(&format!("to http://127.0.0.1:{port}/uploads failed")),
        "{message}"
    );
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("could not connect"), "{cause}");
    assert!(!format!("{message} {cause} {err:?}").contains("hunter2"));
}

#[tokio::test]
async fn an_unreadable_file_or_a_refused_upload_created_nothing() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let uploader = PostUploader::new(format!("{}/uploads", sandbox.base_url()));
    let err = uploader
        .upload(&Media::file("/nonexistent/in.mp4"))
        .await
        .unwrap_err();
    // The disk, not the connection: a local error, and nothing was sent.
    assert!(!err.may_have_been_sent(), "{err}");
    assert!(err.is_local(), "{err:?}");
    assert!(err.to_string().contains("no job was created"), "{err}");
    assert!(err.to_string().contains("/nonexistent/in.mp4"), "{err}");
    assert!(!err.to_string().contains("connection"), "{err}");
    // The sandbox refuses an empty upload with 400.
    let err = uploader
        .upload(&Media::bytes(&b""[..], None))
        .await
        .unwrap_err();
    assert_upload_not_sent(&err);
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("refused it: HTTP 400"), "{cause}");
}

#[tokio::test]
async fn a_file_is_uploaded_whole_as_it_is_read() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let uploader = PostUploader::new(format!("{}/uploads", sandbox.base_url()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    // Several chunks and a ragged end.
    let bytes: Vec<u8> = (0..1_000_003u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let url = uploader.upload(&Media::file(&path)).await.unwrap();
    let fetched = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(fetched.len(), bytes.len());
    assert!(fetched == bytes, "the upload arrived changed");
}

#[tokio::test]
async fn an_endless_upload_answer_is_not_read_to_its_end() {
    // An endpoint that takes the upload, then answers without end.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0; 64 * 1024];
        let _ = socket.read(&mut request).await;
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"url\": \"")
            .await;
        let chunk = vec![b'x'; 64 * 1024];
        while socket.write_all(&chunk).await.is_ok() {}
    });
    let uploader = PostUploader::new(format!("http://127.0.0.1:{port}/uploads?sig=hunter2"));
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        uploader.upload(&Media::bytes(&b"0123456789"[..], Some("video/mp4"))),
    )
    .await
    .expect("the upload ends")
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_upload_not_sent(&err);
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("larger than 1024 KiB"), "{cause}");
    assert!(!format!("{err} {cause}").contains("hunter2"));
}
