//! Reading a media URL's headers over `Range` requests: an honest server's
//! large file in few requests and few bytes, and every hostile server ends
//! in a typed error, within a deadline and in bounded memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kling_core::probe::{ProbeError, Probed, probe_file};
use kling_http::probe::{UrlProbeError, UrlProbeOptions, probe_url};

/// A file served without being held: its start and end are bytes, and
/// between them `gap` zeros (an `mdat`'s payload).
struct Virtual {
    head: Vec<u8>,
    gap: u64,
    tail: Vec<u8>,
}

impl Virtual {
    fn len(&self) -> u64 {
        self.head.len() as u64 + self.gap + self.tail.len() as u64
    }

    fn bytes(&self, start: u64, end: u64) -> Vec<u8> {
        (start..end)
            .map(|at| {
                let head = self.head.len() as u64;
                if at < head {
                    self.head[usize::try_from(at).unwrap()]
                } else if at < head + self.gap {
                    0
                } else {
                    self.tail[usize::try_from(at - head - self.gap).unwrap()]
                }
            })
            .collect()
    }

    /// A file of `size` bytes with the index of `moov_at_end.mp4` at its
    /// end: `ftyp`, an `mdat` filling the middle, `moov`.
    fn moov_at_end(size: u64) -> Virtual {
        let fixture = std::fs::read(fixture("moov_at_end.mp4")).unwrap();
        let boxes = top_level(&fixture);
        let find = |kind: &[u8]| boxes.iter().find(|b| &b[4..8] == kind).unwrap().clone();
        let (ftyp, moov) = (find(b"ftyp"), find(b"moov"));
        let gap = size - (ftyp.len() + 16 + moov.len()) as u64;
        let mut head = ftyp;
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&(gap + 16).to_be_bytes());
        Virtual {
            head,
            gap,
            tail: moov,
        }
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures")
        .join(name)
}

/// The top-level boxes of a small MP4 with 32-bit sizes.
fn top_level(file: &[u8]) -> Vec<Vec<u8>> {
    let mut boxes = Vec::new();
    let mut at = 0;
    while at + 8 <= file.len() {
        let size = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        boxes.push(file[at..at + size].to_vec());
        at += size;
    }
    boxes
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// Serves `file` honouring single ranges, counting what it sends.
async fn honest(
    State((file, seen)): State<(Arc<Virtual>, Arc<Seen>)>,
    headers: HeaderMap,
) -> Response {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .unwrap();
    let end = range.1.min(file.len() - 1);
    let body = file.bytes(range.0, end + 1);
    seen.bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
    (
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (
                header::CONTENT_RANGE,
                format!("bytes {}-{end}/{}", range.0, file.len()),
            ),
        ],
        body,
    )
        .into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// Serves `file` honouring ranges: its address, and what it sent.
async fn serve_honestly(file: Virtual) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let base = serve(
        Router::new()
            .fallback(honest)
            .with_state((Arc::new(file), Arc::clone(&seen))),
    )
    .await;
    (base, seen)
}

fn options() -> UrlProbeOptions {
    UrlProbeOptions::default().deadline(Duration::from_secs(3))
}

async fn probe(url: &str) -> Result<kling_http::probe::UrlProbe, UrlProbeError> {
    let options = options();
    probe_url(&options.client().unwrap(), url, &options).await
}

#[tokio::test]
async fn a_large_file_with_its_index_at_the_end_takes_two_ranges() {
    const SIZE: u64 = 165_000_000;
    let file = Virtual::moov_at_end(SIZE);
    let moov = file.tail.len() as u64;
    let (base, seen) = serve_honestly(file).await;
    let found = probe(&format!("{base}/clip.mp4?X-Amz-Signature=abc"))
        .await
        .unwrap();
    let Probed::Video(video) = &found.probed else {
        panic!("not a video: {:?}", found.probed)
    };
    let Probed::Video(local) = probe_file(&fixture("moov_at_end.mp4")).unwrap() else {
        unreachable!()
    };
    assert_eq!(video.duration, local.duration);
    assert_eq!(video.video, local.video);
    assert_eq!(video.size_bytes, SIZE);
    assert_eq!(found.requests, 2);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 2);
    let sent = seen.bytes.load(Ordering::SeqCst);
    assert!(
        sent <= moov + (1 << 20),
        "{sent} bytes for a {moov}-byte moov"
    );
    assert_eq!(found.bytes, sent);
    assert!(!found.range_ignored);
}

#[tokio::test]
async fn refusing_answers_and_web_pages_are_refusals_naming_the_url_without_its_query() {
    let base = serve(
        Router::new()
            .route("/gone", axum::routing::get(|| async { StatusCode::GONE }))
            .route(
                "/private",
                axum::routing::get(|| async { StatusCode::FORBIDDEN }),
            )
            .route(
                "/page",
                axum::routing::get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        "<html>sign in</html>",
                    )
                }),
            )
            .route(
                "/notes",
                axum::routing::get(|| async {
                    (
                        StatusCode::PARTIAL_CONTENT,
                        [(header::CONTENT_RANGE, "bytes 0-13/14")],
                        "just some text",
                    )
                }),
            ),
    )
    .await;
    for (path, status) in [("/gone", 410), ("/private", 403), ("/missing", 404)] {
        let error = probe(&format!("{base}{path}?token=SECRET"))
            .await
            .unwrap_err();
        assert!(error.is_refusal(), "{error}");
        assert!(matches!(error, UrlProbeError::Refused { status: s, .. } if s == status));
        let message = error.to_string();
        assert!(message.contains(&format!("{base}{path}")), "{message}");
        assert!(!message.contains("SECRET"), "{message}");
    }
    let page = probe(&format!("{base}/page?token=SECRET"))
        .await
        .unwrap_err();
    assert!(matches!(page, UrlProbeError::NotMedia { .. }), "{page}");
    let notes = probe(&format!("{base}/notes")).await.unwrap_err();
    assert!(
        matches!(
            notes,
            UrlProbeError::Media {
                error: ProbeError::Unrecognized { .. },
                ..
            }
        ),
        "{notes}"
    );
}

#[tokio::test]
async fn a_closed_port_is_unreachable_not_a_refusal() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = probe(&format!("http://{addr}/a.mp4")).await.unwrap_err();
    assert!(
        matches!(error, UrlProbeError::Unreachable { .. }),
        "{error}"
    );
    assert!(!error.is_refusal());
}

/// An endless stream of zeros, counting what was taken of it.
fn endless(taken: Arc<AtomicU64>) -> Body {
    let chunk = Bytes::from(vec![0u8; 64 << 10]);
    Body::from_stream(futures_util::stream::repeat_with(move || {
        taken.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        Ok::<_, std::io::Error>(chunk.clone())
    }))
}

#[tokio::test]
async fn endless_bodies_are_read_only_to_a_cap() {
    let taken = Arc::new(AtomicU64::new(0));
    let ignoring = {
        let taken = Arc::clone(&taken);
        move || {
            let taken = Arc::clone(&taken);
            async move { ([(header::CONTENT_TYPE, "video/mp4")], endless(taken)) }
        }
    };
    let overlong = {
        let taken = Arc::clone(&taken);
        move || {
            let taken = Arc::clone(&taken);
            async move {
                (
                    StatusCode::PARTIAL_CONTENT,
                    [(header::CONTENT_RANGE, "bytes 0-65535/1000000")],
                    endless(taken),
                )
            }
        }
    };
    let base = serve(
        Router::new()
            .route("/ignoring.mp4", axum::routing::get(ignoring))
            .route("/overlong.mp4", axum::routing::get(overlong)),
    )
    .await;
    let started = Instant::now();
    let error = probe(&format!("{base}/ignoring.mp4")).await.unwrap_err();
    assert!(matches!(error, UrlProbeError::Unchecked { .. }), "{error}");
    assert!(error.to_string().contains("ignores Range"), "{error}");
    let error = probe(&format!("{base}/overlong.mp4")).await.unwrap_err();
    assert!(matches!(error, UrlProbeError::Unchecked { .. }), "{error}");
    assert!(error.to_string().contains("more"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server runs ahead of what is read by its buffers only.
    let sent = taken.load(Ordering::SeqCst);
    assert!(sent < 32 << 20, "{sent} bytes taken from endless bodies");
}

#[tokio::test]
async fn a_content_range_other_than_the_one_asked_for_is_an_error() {
    let base = serve(Router::new().fallback(|| async {
        (
            StatusCode::PARTIAL_CONTENT,
            [(header::CONTENT_RANGE, "bytes 100-199/1000")],
            vec![0u8; 100],
        )
    }))
    .await;
    let error = probe(&format!("{base}/a.mp4")).await.unwrap_err();
    assert!(matches!(error, UrlProbeError::Unchecked { .. }), "{error}");
    assert!(error.to_string().contains("Content-Range"), "{error}");
}

#[tokio::test]
async fn an_index_claiming_a_gigabyte_is_refused_without_reading_it() {
    // ftyp, then a moov header claiming 1 GB of a file that is as long as
    // it says.
    let claimed: u64 = 1 << 30;
    let mut head = top_level(&std::fs::read(fixture("moov_at_end.mp4")).unwrap())[0].clone();
    assert_eq!(&head[4..8], b"ftyp");
    head.extend_from_slice(&1u32.to_be_bytes());
    head.extend_from_slice(b"moov");
    head.extend_from_slice(&claimed.to_be_bytes());
    let virtual_file = Virtual {
        head,
        gap: claimed - 16,
        tail: Vec::new(),
    };
    let file = virtual_file;
    let (base, seen) = serve_honestly(file).await;
    let error = probe(&format!("{base}/huge.mp4")).await.unwrap_err();
    assert!(
        matches!(
            error,
            UrlProbeError::Media {
                error: ProbeError::TooLarge { .. },
                ..
            }
        ),
        "{error}"
    );
    assert!(seen.bytes.load(Ordering::SeqCst) < 1 << 20);
}

#[tokio::test]
async fn a_slow_loris_is_given_up_on_at_the_deadline() {
    // Headers a byte a second: the answer never completes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                // The request first: a client hears nothing said before it.
                let mut request = [0u8; 4096];
                if stream.read(&mut request).await.is_err() {
                    return;
                }
                for byte in b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\n" {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    });
    let options = UrlProbeOptions::default().deadline(Duration::from_millis(1500));
    let started = Instant::now();
    let error = probe_url(
        &options.client().unwrap(),
        &format!("http://{addr}/a.mp4"),
        &options,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, UrlProbeError::Unchecked { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    let file = Virtual::moov_at_end(3_000_000);
    let (target, _) = serve_honestly(file).await;
    let to = format!("{target}/clip.mp4");
    let once = serve(Router::new().fallback(move || {
        let to = to.clone();
        async move { (StatusCode::FOUND, [(header::LOCATION, to)]) }
    }))
    .await;
    assert!(probe(&format!("{once}/start")).await.is_ok());
    let looping = serve(
        Router::new().fallback(|| async { (StatusCode::FOUND, [(header::LOCATION, "/again")]) }),
    )
    .await;
    let error = probe(&format!("{looping}/start")).await.unwrap_err();
    assert!(error.to_string().contains("redirect"), "{error}");
    assert!(!error.is_refusal());
}

#[tokio::test]
async fn a_server_that_ignores_range_is_read_only_to_its_start_and_says_so() {
    let video = std::fs::read(fixture("faststart.mp4")).unwrap();
    let base = serve(Router::new().fallback(move || {
        let video = video.clone();
        async move { ([(header::CONTENT_TYPE, "video/mp4")], video) }
    }))
    .await;
    let found = probe(&format!("{base}/faststart.mp4")).await.unwrap();
    assert!(found.range_ignored);
    assert_eq!(found.requests, 1);
    assert_eq!(
        found.probed,
        probe_file(&fixture("faststart.mp4")).unwrap(),
        "the same as the file"
    );
}
