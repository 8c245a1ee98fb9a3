//! Downloads: resumed with `Range` after a dropped connection, renamed
//! into place, never carrying a key; 403 reported as an expired URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kling_http::{DownloadError, RetryPolicy, TokioClock, download, part_path};

#[derive(Default)]
struct Server {
    requests: AtomicUsize,
    with_auth: AtomicUsize,
    ranges: std::sync::Mutex<Vec<String>>,
}

fn content() -> Vec<u8> {
    (0..200_000u32)
        .map(|i| i.to_le_bytes()[0] ^ i.to_le_bytes()[1])
        .collect()
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
