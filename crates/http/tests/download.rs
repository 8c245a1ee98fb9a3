//! Downloads: resumed with `Range` after a dropped connection, renamed
//! into place only when whole and a video, never carrying a key; 403
//! reported as an expired URL; stalls and deadlines end a download; one
//! writer per destination; only regular files written.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kling_http::{
    Clock, DownloadError, DownloadOptions, RetryPolicy, TokioClock, download,
    download_with_options, part_path,
};

#[derive(Default)]
struct Server {
    requests: AtomicUsize,
    with_auth: AtomicUsize,
    ranges: std::sync::Mutex<Vec<String>>,
}

/// A real (tiny) MP4 followed by a `free` box of varied bytes, 200,000
/// bytes in all: the probe reads it as a video, and a byte out of place
/// shows.
fn content() -> Vec<u8> {
    let mut data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/fixtures/moov_at_end.mp4"
    ))
    .unwrap();
    let free = u32::try_from(200_000 - data.len()).unwrap();
    data.extend_from_slice(&free.to_be_bytes());
    data.extend_from_slice(b"free");
    let mut i = 0u32;
    while data.len() < 200_000 {
        data.push(i.to_le_bytes()[0] ^ i.to_le_bytes()[1]);
        i += 1;
    }
    data
}

/// The first answer sends 50,000 bytes and then breaks the connection;
/// later ones honour `Range`.
async fn flaky(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let n = server.requests.fetch_add(1, Ordering::SeqCst);
    if headers.contains_key(header::AUTHORIZATION) {
        server.with_auth.fetch_add(1, Ordering::SeqCst);
    }
    let data = content();
    let total = data.len();
    if n == 0 {
        let head = Bytes::from(data[..50_000].to_vec());
        // The head is flushed before the connection breaks.
        let stream = futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok::<_, std::io::Error>(head)]),
            futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Err(std::io::Error::other("connection reset"))
            }),
        );
        return (
            [(header::CONTENT_LENGTH, total.to_string())],
            Body::from_stream(stream),
        )
            .into_response();
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    server.ranges.lock().unwrap().push(range.clone());
    let start: usize = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        StatusCode::PARTIAL_CONTENT,
        [(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", total - 1),
        )],
        Body::from(data[start..].to_vec()),
    )
        .into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn a_dropped_download_resumes_where_it_stopped() {
    let server = Arc::new(Server::default());
    let base = serve(
        Router::new()
            .route("/video.mp4", get(flaky))
            .with_state(Arc::clone(&server)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let size = download(
        &format!("{base}/video.mp4"),
        &dest,
        quick_retries(),
        Arc::new(TokioClock::new()),
    )
    .await
    .unwrap();
    assert_eq!(size, 200_000);
    assert_eq!(std::fs::read(&dest).unwrap(), content());
    assert!(!part_path(&dest).exists(), "the .part file was renamed");
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(*server.ranges.lock().unwrap(), ["bytes=50000-"]);
    assert_eq!(server.with_auth.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_part_file_left_by_a_killed_process_is_resumed() {
    let server = Arc::new(Server::default());
    server.requests.store(1, Ordering::SeqCst); // no drop this time
    let base = serve(
        Router::new()
            .route("/video.mp4", get(flaky))
            .with_state(Arc::clone(&server)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    std::fs::write(part_path(&dest), &content()[..123_456]).unwrap();
    download(
        &format!("{base}/video.mp4"),
        &dest,
        quick_retries(),
        Arc::new(TokioClock::new()),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content());
    assert_eq!(*server.ranges.lock().unwrap(), ["bytes=123456-"]);
}

#[tokio::test]
async fn forbidden_is_an_expired_url() {
    let base =
        serve(Router::new().route("/gone.mp4", get(|| async { StatusCode::FORBIDDEN }))).await;
    let dir = tempfile::tempdir().unwrap();
    let err = download(
        &format!("{base}/gone.mp4"),
        &dir.path().join("x.mp4"),
        quick_retries(),
        Arc::new(TokioClock::new()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, DownloadError::Expired { status: 403 }),
        "{err}"
    );
}

/// Options for tests: quick retries, and the given stall limit.
fn options(stall: Duration) -> DownloadOptions {
    DownloadOptions::default()
        .retry(quick_retries())
        .stall(stall)
}

async fn get_with(
    url: &str,
    dest: &std::path::Path,
    options: &DownloadOptions,
) -> Result<u64, DownloadError> {
    download_with_options(url, dest, options, Arc::new(TokioClock::new()), &|_, _| {}).await
}

const ERROR_PAGE: &str =
    "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>";

#[tokio::test]
async fn an_html_page_is_not_saved_as_the_video() {
    let base = serve(Router::new().route(
        "/video.mp4",
        get(|| async { ([(header::CONTENT_TYPE, "text/html")], ERROR_PAGE) }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let err = get_with(
        &format!("{base}/video.mp4"),
        &dest,
        &options(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    let DownloadError::NotAVideo { detail } = &err else {
        panic!("expected NotAVideo, got {err:?}");
    };
    assert!(detail.contains("text/html"), "{detail}");
    assert!(!dest.exists(), "no destination was created");
    assert!(!part_path(&dest).exists(), "the HTML page was not kept");
}

#[tokio::test]
async fn a_resumed_part_that_turns_out_to_be_an_image_is_dropped() {
    // The server ignores Range and sends a PNG: the download starts over,
    // and the result is refused as a whole.
    let png = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/fixtures/image.png"
    ))
    .unwrap();
    let base = serve(Router::new().route(
        "/video.mp4",
        get(move || {
            let png = png.clone();
            async move { ([(header::CONTENT_TYPE, "video/mp4")], png) }
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    std::fs::write(part_path(&dest), &content()[..1000]).unwrap();
    let err = get_with(
        &format!("{base}/video.mp4"),
        &dest,
        &options(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DownloadError::NotAVideo { detail } if detail.contains("PNG image")),
        "{err:?}"
    );
    assert!(!dest.exists());
    assert!(!part_path(&dest).exists());
}

/// Announces the whole length, sends the first half, and breaks the
/// connection, every time, whatever the Range.
async fn always_short(State(server): State<Arc<Server>>) -> Response {
    server.requests.fetch_add(1, Ordering::SeqCst);
    let data = content();
    let head = Bytes::from(data[..100_000].to_vec());
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(head)]),
        futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(std::io::Error::other("connection reset"))
        }),
    );
    (
        [(header::CONTENT_LENGTH, data.len().to_string())],
        Body::from_stream(stream),
    )
        .into_response()
}

#[tokio::test]
async fn a_result_shorter_than_announced_is_never_renamed_into_place() {
    let server = Arc::new(Server::default());
    let base = serve(
        Router::new()
            .route("/video.mp4", get(always_short))
            .with_state(Arc::clone(&server)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let err = get_with(
        &format!("{base}/video.mp4"),
        &dest,
        &options(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, DownloadError::Failed { kept: 100_000, .. }),
        "{err:?}"
    );
    assert!(!dest.exists(), "a truncated result is not the result");
    assert_eq!(
        std::fs::read(part_path(&dest)).unwrap(),
        content()[..100_000],
        "the prefix is kept for resuming"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 4, "every try spent");
}

#[tokio::test]
async fn a_short_body_with_no_announced_length_is_caught_by_the_probe() {
    let truncated = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/fixtures/truncated.mp4"
    ))
    .unwrap();
    let base = serve(Router::new().route(
        "/video.mp4",
        get(move || {
            let truncated = truncated.clone();
            // A stream: sent chunked, with no Content-Length.
            async move {
                Body::from_stream(futures_util::stream::iter([Ok::<_, std::io::Error>(
                    Bytes::from(truncated),
                )]))
            }
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let err = get_with(
        &format!("{base}/video.mp4"),
        &dest,
        &options(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DownloadError::NotAVideo { detail } if detail.contains("truncated")),
        "{err:?}"
    );
    assert!(!dest.exists());
}

/// Announces the whole length, sends 64 bytes, then nothing for 30 s.
async fn stalls() -> Response {
    let data = content();
    let head = Bytes::from(data[..64].to_vec());
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(head)]),
        futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Err(std::io::Error::other("gave up"))
        }),
    );
    (
        [(header::CONTENT_LENGTH, data.len().to_string())],
        Body::from_stream(stream),
    )
        .into_response()
}

#[tokio::test]
async fn a_stalled_body_ends_at_the_stall_limit_and_keeps_what_came() {
    let base = serve(Router::new().route("/video.mp4", get(stalls))).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let started = Instant::now();
    let err = get_with(
        &format!("{base}/video.mp4"),
        &dest,
        &options(Duration::from_secs(1)),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, DownloadError::Stalled { kept: 64, after } if after == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(5), "ended after {took:?}");
    assert!(took >= Duration::from_secs(1), "ended after {took:?}");
    assert_eq!(std::fs::read(part_path(&dest)).unwrap(), content()[..64]);
    assert!(!dest.exists());
}

#[tokio::test]
async fn a_server_that_never_answers_stalls_too() {
    let base = serve(Router::new().route(
        "/video.mp4",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let started = Instant::now();
    let err = get_with(
        &format!("{base}/video.mp4"),
        &dest,
        &options(Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, DownloadError::Stalled { kept: 0, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        !part_path(&dest).exists(),
        "an empty .part is not left behind"
    );
}

/// Sends the content 2 KiB every 50 ms: about 5 s in all, never stalling.
async fn trickles() -> Response {
    let chunks: Vec<Bytes> = content().chunks(2048).map(Bytes::copy_from_slice).collect();
    let stream = futures_util::StreamExt::then(futures_util::stream::iter(chunks), |c| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, std::io::Error>(c)
    });
    (
        [(header::CONTENT_LENGTH, content().len().to_string())],
        Body::from_stream(stream),
    )
        .into_response()
}

#[tokio::test]
async fn a_trickle_ends_at_the_overall_deadline() {
    let base = serve(Router::new().route("/video.mp4", get(trickles))).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let started = Instant::now();
    let err = get_with(
        &format!("{base}/video.mp4"),
        &dest,
        &options(Duration::from_secs(10)).deadline(Duration::from_secs(1)),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    let DownloadError::TimedOut { after, kept } = err else {
        panic!("expected TimedOut, got {err:?}");
    };
    assert_eq!(after, Duration::from_secs(1));
    assert!(took < Duration::from_secs(3), "ended after {took:?}");
    assert!(kept > 0 && kept < 200_000, "{kept} bytes kept");
    assert_eq!(
        std::fs::read(part_path(&dest)).unwrap(),
        content()[..usize::try_from(kept).unwrap()],
        "what came is kept for resuming"
    );
    assert!(!dest.exists());
}

/// Virtual time: `sleep` returns at once and moves `now`.
#[derive(Debug, Default)]
struct VirtualClock {
    now: std::sync::Mutex<Duration>,
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap()
    }

    fn sleep(
        &self,
        duration: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        *self.now.lock().unwrap() += duration;
        Box::pin(async {})
    }
}

#[tokio::test]
async fn retry_waits_count_against_the_deadline_on_the_callers_clock() {
    let server = Arc::new(Server::default());
    let base = serve(
        Router::new()
            .route(
                "/video.mp4",
                get(|State(server): State<Arc<Server>>| async move {
                    server.requests.fetch_add(1, Ordering::SeqCst);
                    StatusCode::SERVICE_UNAVAILABLE
                }),
            )
            .with_state(Arc::clone(&server)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(VirtualClock::default());
    let options = DownloadOptions::default()
        .retry(RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(10),
        })
        .deadline(Duration::from_secs(60));
    let started = Instant::now();
    let err = download_with_options(
        &format!("{base}/video.mp4"),
        &dir.path().join("out.mp4"),
        &options,
        clock.clone(),
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DownloadError::TimedOut { .. }), "{err:?}");
    assert!(clock.now() <= Duration::from_secs(60), "{:?}", clock.now());
    let requests = server.requests.load(Ordering::SeqCst);
    assert!((6..=13).contains(&requests), "{requests} requests");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_second_download_of_the_same_destination_is_refused_while_the_first_runs() {
    let served = Arc::new(AtomicUsize::new(0));
    let base = serve(
        Router::new()
            .route(
                "/video.mp4",
                get(|State(served): State<Arc<AtomicUsize>>| async move {
                    served.fetch_add(1, Ordering::SeqCst);
                    trickles().await
                }),
            )
            .with_state(Arc::clone(&served)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");
    let url = format!("{base}/video.mp4");
    let first = {
        let (url, dest) = (url.clone(), dest.clone());
        tokio::spawn(async move { get_with(&url, &dest, &options(Duration::from_secs(10))).await })
    };
    // Once the first has written something, it holds the .part file.
    let part = part_path(&dest);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "the first download never began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let err = get_with(&url, &dest, &options(Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DownloadError::Busy { path } if *path == part),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
    assert_eq!(served.load(Ordering::SeqCst), 1, "the second sent nothing");
    assert_eq!(first.await.unwrap().unwrap(), 200_000);
    assert_eq!(std::fs::read(&dest).unwrap(), content(), "intact");
    assert!(!part.exists());
}

#[tokio::test]
async fn a_destination_that_is_not_a_regular_file_is_refused_and_left_alone() {
    let server = Arc::new(Server::default());
    server.requests.store(1, Ordering::SeqCst);
    let base = serve(
        Router::new()
            .route("/video.mp4", get(flaky))
            .with_state(Arc::clone(&server)),
    )
    .await;
    let url = format!("{base}/video.mp4");
    let dir = tempfile::tempdir().unwrap();
    let quick = options(Duration::from_secs(5));

    let directory = dir.path().join("a-directory.mp4");
    std::fs::create_dir(&directory).unwrap();
    std::fs::write(directory.join("inside"), b"kept").unwrap();
    let err = get_with(&url, &directory, &quick).await.unwrap_err();
    assert!(
        matches!(&err, DownloadError::NotARegularFile { path, found: "a directory" } if *path == directory),
        "{err:?}"
    );
    assert!(err.to_string().contains("a-directory.mp4"), "{err}");
    assert_eq!(std::fs::read(directory.join("inside")).unwrap(), b"kept");

    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let fifo = dir.path().join("a-fifo.mp4");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = get_with(&url, &fifo, &quick).await.unwrap_err();
        assert!(
            matches!(
                &err,
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

        // A symlink to a directory is refused too.
        let link = dir.path().join("a-link.mp4");
        std::os::unix::fs::symlink(&directory, &link).unwrap();
        let err = get_with(&url, &link, &quick).await.unwrap_err();
        assert!(
            matches!(
                &err,
                DownloadError::NotARegularFile {
                    found: "a directory",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        // A .part that is a symlink is refused, and its target untouched.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"not yours").unwrap();
        let dest = dir.path().join("out.mp4");
        std::os::unix::fs::symlink(&target, part_path(&dest)).unwrap();
        let err = get_with(&url, &dest, &quick).await.unwrap_err();
        assert!(
            matches!(
                &err,
                DownloadError::NotARegularFile {
                    found: "a symbolic link",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"not yours");
        assert!(!dest.exists());
    }
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        1,
        "nothing was requested"
    );
}

#[tokio::test]
async fn a_signed_urls_query_is_not_in_the_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let err = get_with(
        &format!("http://127.0.0.1:{port}/video.mp4?X-Amz-Signature=c0ffee5ecret"),
        &dir.path().join("out.mp4"),
        &DownloadOptions::default().retry(RetryPolicy::NONE),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DownloadError::Failed { .. }), "{err:?}");
    assert!(!err.to_string().contains("c0ffee5ecret"), "{err}");
}
