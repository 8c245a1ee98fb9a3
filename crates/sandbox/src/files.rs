//! Result downloads, uploads and the stats endpoint: routes outside the
//! providers' APIs, with no key needed.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde_json::json;

use crate::faults::{FaultKind, Operation, STALL_HOLD};
use crate::protocol::{apply_faults, dropped};
use crate::state::{Count, ResultFile, State};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/files/{file}/{token}", get(download))
        .route("/uploads", post(upload))
        .route("/uploads/{id}", get(uploaded))
        .route("/_sandbox/stats", get(stats))
}

async fn download(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path((file, token)): Path<(String, String)>,
) -> Response {
    let Some(found) = state.result_file(&file, &token) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let provider = match &found {
        ResultFile::Ready(provider, _) | ResultFile::Expired(provider) => *provider,
    };
    state.count(provider, Count::Download);
    if headers.contains_key(header::AUTHORIZATION) {
        state.count(provider, Count::DownloadWithAuth);
    }
    if headers.contains_key(header::RANGE) {
        state.count(provider, Count::RangedDownload);
    }
    let faults = match apply_faults(&state, provider, Operation::Download, "/files").await {
        Ok(faults) if faults.contains(&FaultKind::Drop) => return dropped(),
        Ok(faults) => faults,
        Err(answer) => return answer,
    };
    let bytes = match found {
        ResultFile::Ready(_, bytes) => bytes,
        ResultFile::Expired(provider) => {
            return (
                provider.protocol().expired,
                "URL expired: ask for the job's status again",
            )
                .into_response();
        }
    };
    if faults.contains(&FaultKind::Html) {
        return html_page();
    }
    let pace = if faults.contains(&FaultKind::Stall) {
        Pace::Stall
    } else if faults.contains(&FaultKind::Trickle) {
        Pace::Trickle
    } else {
        Pace::Whole
    };
    serve(&headers, &bytes, "video/mp4", pace)
}

/// What a CDN or proxy in trouble answers in place of a file: `200 OK` and
/// an HTML page (the `html` fault).
pub(crate) fn html_page() -> Response {
    const PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>\n\
        <body><h1>Service Unavailable</h1><p>The file is temporarily unavailable; \
        please try again later. (sandbox fault <code>html</code>)</p></body></html>\n";
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from(PAGE),
    )
        .into_response()
}

/// How a body is sent.
#[derive(Clone, Copy)]
enum Pace {
    /// All at once.
    Whole,
    /// 1 KiB every 100 ms (the `trickle` fault).
    Trickle,
    /// The first 64 bytes, then nothing until the connection is closed
    /// after [`STALL_HOLD`] (the `stall` fault).
    Stall,
}

/// A body of `bytes`, sent at `pace`.
fn body(bytes: &[u8], pace: Pace) -> Body {
    match pace {
        Pace::Whole => Body::from(Bytes::copy_from_slice(bytes)),
        Pace::Trickle => {
            let chunks: Vec<Bytes> = bytes.chunks(1024).map(Bytes::copy_from_slice).collect();
            let stream = futures_util::stream::iter(chunks).then(|chunk| async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(chunk)
            });
            Body::from_stream(stream)
        }
        Pace::Stall => {
            let head = Bytes::copy_from_slice(&bytes[..bytes.len().min(64)]);
            // The body never completes: after the hold, an error closes the
            // connection, short of the length announced.
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(head)]).chain(
                futures_util::stream::once(async {
                    tokio::time::sleep(STALL_HOLD).await;
                    Err(std::io::Error::other("stalled (sandbox fault `stall`)"))
                }),
            );
            Body::from_stream(stream)
        }
    }
}

/// Serves `bytes`, honouring a single `Range: bytes=START-[END]`, with its
/// length announced however the body comes.
fn serve(headers: &HeaderMap, bytes: &[u8], content_type: &'static str, pace: Pace) -> Response {
    let total = bytes.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="));
    let Some(range) = range else {
        return (
            [
                (header::CONTENT_TYPE, content_type.to_owned()),
                (header::ACCEPT_RANGES, "bytes".to_owned()),
                (header::CONTENT_LENGTH, total.to_string()),
            ],
            body(bytes, pace),
        )
            .into_response();
    };
    let parsed = range.split_once('-').and_then(|(start, end)| {
        let start: usize = start.parse().ok()?;
        // An end past the last byte means the last byte (RFC 9110 14.1.2).
        let last = total.checked_sub(1)?;
        let end: usize = if end.is_empty() {
            last
        } else {
            end.parse::<usize>().ok()?.min(last)
        };
        (start <= end).then_some((start, end))
    });
    let Some((start, end)) = parsed else {
        return (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{total}"))],
        )
            .into_response();
    };
    (
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{total}"),
            ),
            (header::CONTENT_LENGTH, (end + 1 - start).to_string()),
        ],
        body(&bytes[start..=end], pace),
    )
        .into_response()
}

async fn upload(Extract(state): Extract<Arc<State>>, body: Bytes) -> Response {
    if body.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "empty upload" })),
        )
            .into_response();
    }
    let url = state.add_upload(Arc::from(&body[..]));
    Json(json!({ "url": url })).into_response()
}

async fn uploaded(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match state.upload(&id) {
        Some(bytes) => serve(&headers, &bytes, "application/octet-stream", Pace::Whole),
        None => (StatusCode::NOT_FOUND, "no such upload").into_response(),
    }
}

async fn stats(Extract(state): Extract<Arc<State>>) -> Json<crate::Stats> {
    Json(state.stats())
}
