//! What every provider route shares: bearer auth, faults, error shapes.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Provider;
use crate::faults::{FaultKind, Operation};
use crate::state::{Count, State, answering_fault, delay};

/// Marks a response the server must not send: it closes the connection
/// instead, as a provider whose connection drops after reading the request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

/// The provider's error body for `status`.
pub(crate) fn error(provider: Provider, status: StatusCode, message: &str, path: &str) -> Response {
    let code = status.as_u16();
    let body = match provider {
        // ShortAPI documents only `code != 0`; `message` is the sandbox's.
        Provider::ShortApi => json!({ "code": code, "message": message, "data": null }),
        Provider::AimlApi => json!({
            "message": message,
            "path": path,
            "requestId": request_id(),
            "statusCode": code,
            "timestamp": timestamp(),
        }),
        Provider::Oxen => json!({
            "error": {
                "type": oxen_error_type(status),
                "title": status.canonical_reason().unwrap_or("Error"),
                "detail": message,
            },
            "status": "error",
            "status_message": message,
        }),
    };
    (status, Json(body)).into_response()
}

fn oxen_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        404 => "not_found",
        429 => "rate_limited",
        _ => "internal_error",
    }
}

fn request_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("sandbox-{nanos:x}")
}

fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}")
}

/// The bearer key, if the request carries a non-empty one.
fn has_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
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
    if !has_bearer(headers) {
        if operation == Operation::Create {
            state.count(provider, Count::Rejected);
        }
        return error(
            provider,
            StatusCode::UNAUTHORIZED,
            "missing or empty bearer token: send `Authorization: Bearer KEY` (the sandbox takes any non-empty key)",
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
