//! What every provider route shares: bearer auth, faults, error shapes.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::Value;

use crate::Provider;
use crate::faults::{FaultKind, Operation};
use crate::state::{Announcement, Count, State, answering_fault, delay};

/// Marks a response the server must not send: it closes the connection
/// instead, as a provider whose connection drops after reading the request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

/// How one provider speaks: what the shared machinery (routing, errors,
/// schemas, announcements, result URLs) needs of its module.
pub(crate) struct Protocol {
    /// Its name, also its path prefix.
    pub(crate) name: &'static str,
    /// Its routes, nested under `/{name}`.
    pub(crate) routes: fn() -> Router<Arc<State>>,
    /// Its error body for a status, a message and the request's path.
    pub(crate) error_body: fn(StatusCode, &str, &str) -> Value,
    /// Each model and the published schema of its create body.
    pub(crate) schemas: &'static [(&'static str, &'static str)],
    /// The published envelope every model's body is merged into, if any.
    pub(crate) envelope: Option<&'static str>,
    /// How an expired result URL answers.
    pub(crate) expired: StatusCode,
    /// Whether every job's end is pushed to the client (an event stream),
    /// not only where the job asked for it (a callback URL).
    pub(crate) pushes_every_end: bool,
    /// Sends what a job announces as it starts or ends.
    pub(crate) announce: fn(&Arc<State>, &Announcement),
    /// The word before the key in `Authorization`: `Bearer` or `Key`.
    pub(crate) key_scheme: &'static str,
}

/// The provider's error body for `status`.
pub(crate) fn error(provider: Provider, status: StatusCode, message: &str, path: &str) -> Response {
    let body = (provider.protocol().error_body)(status, message, path);
    (status, Json(body)).into_response()
}

/// A request id, as providers that name each request give one.
pub(crate) fn request_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("sandbox-{nanos:x}")
}

/// Now, in Unix seconds, as text.
pub(crate) fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}")
}

/// Whether the request carries a non-empty key under `scheme`.
pub(crate) fn has_key(headers: &HeaderMap, scheme: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(scheme))
        .and_then(|v| v.strip_prefix(' '))
        .is_some_and(|key| !key.trim().is_empty())
}

/// Runs a provider route: checks the key, applies the faults that hit, then
/// runs `handler`. A `drop` fault lets the handler run (a create may well
/// have made its job) and then closes the connection without an answer.
pub(crate) async fn guarded<F, Fut>(
    state: &State,
    provider: Provider,
    operation: Operation,
    headers: &HeaderMap,
    path: &str,
    handler: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response>,
{
    let scheme = provider.protocol().key_scheme;
    if !has_key(headers, scheme) {
        if operation == Operation::Create {
            state.count(provider, Count::Rejected);
        }
        return error(
            provider,
            StatusCode::UNAUTHORIZED,
            &format!(
                "missing or empty key: send `Authorization: {scheme} KEY` (the sandbox takes any \
                 non-empty key)"
            ),
            path,
        );
    }
    if operation == Operation::Create
        && let Some(max) = state.config.max_running
        && state.unfinished(provider) >= max
    {
        state.count(provider, Count::OverConcurrency);
        return error(
            provider,
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "concurrency limit reached: at most {max} tasks at once (code 1303); wait for \
                 one to finish"
            ),
            path,
        );
    }
    let faults = match apply_faults(state, provider, operation, path).await {
        Ok(faults) => faults,
        Err(answer) => return answer,
    };
    // An HTML page where JSON belongs, as a proxy in front of the API
    // may serve: the request did not reach the provider.
    if faults.contains(&FaultKind::Html) && operation == Operation::Status {
        return crate::files::html_page();
    }
    let response = handler().await;
    if faults.contains(&FaultKind::Drop) {
        return dropped();
    }
    response
}

/// Rolls the faults for a request: sleeps through a `slow` one, and answers
/// in the handler's place for a 429 or 5xx one (`Err`). Returns the faults
/// that hit, so the caller can apply `drop` where it belongs.
pub(crate) async fn apply_faults(
    state: &State,
    provider: Provider,
    operation: Operation,
    path: &str,
) -> Result<Vec<FaultKind>, Response> {
    let faults = state.request_faults(provider, operation);
    if let Some(delay) = delay(&faults) {
        tokio::time::sleep(delay).await;
    }
    match answering_fault(&faults) {
        Some(FaultKind::RateLimit) => {
            let mut response = error(
                provider,
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit reached (sandbox fault `429`)",
                path,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(response)
        }
        Some(FaultKind::ServerError(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(error(
                provider,
                status,
                &format!("server error (sandbox fault `{code}`)"),
                path,
            ))
        }
        _ => Ok(faults),
    }
}

pub(crate) fn dropped() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

/// POSTs `body` to an `http://` URL; whether it was answered 2xx. The
/// sandbox runs on loopback, so callbacks go to plain HTTP.
pub(crate) async fn post_json(url: &str, body: &serde_json::Value) -> bool {
    post_signed(url, body.to_string(), &[]).await
}

/// POSTs the JSON text `body` to an `http://` URL with `headers` (a
/// signature); whether it was answered 2xx.
pub(crate) async fn post_signed(url: &str, body: String, headers: &[(&str, String)]) -> bool {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return false;
    };
    let mut request =
        hyper::Request::post(uri).header(hyper::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request.body(http_body_util::Full::new(axum::body::Bytes::from(body)));
    let Ok(request) = request else { return false };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<axum::body::Bytes>>();
    let answer = tokio::time::timeout(Duration::from_secs(10), client.request(request)).await;
    matches!(answer, Ok(Ok(response)) if response.status().is_success())
}
