//! ShortAPI: `POST /api/v1/job/create`, `GET /api/v1/job/query?id=`, and
//! the callback POST.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::Provider::ShortApi;
use crate::faults::Operation;
use crate::protocol::guarded;
use crate::protocol::{Protocol, post_json};
use crate::schemas;
use crate::schemas::published;
use crate::state::{Announcement, Count, NewJob, Phase, State};

/// ShortAPI, as the sandbox speaks it.
pub(super) const PROTOCOL: Protocol = Protocol {
    name: "shortapi",
    key_scheme: "Bearer",
    routes,
    // ShortAPI documents only `code != 0`; `message` is the sandbox's.
    error_body: |status, message, _| json!({ "code": status.as_u16(), "message": message, "data": null }),
    schemas: &[
        (
            "kwaivgi/kling-o1/video-to-video",
            published!("shortapi/kling-o1-video-to-video.json"),
        ),
        (
            "kwaivgi/kling-o3/video-to-video",
            published!("shortapi/kling-o3-video-to-video.json"),
        ),
        (
            "kwaivgi/kling-o1/image-to-video",
            published!("shortapi/kling-o1-image-to-video.json"),
        ),
    ],
    envelope: None,
    // Signed CDN URLs answer 403 when expired.
    expired: StatusCode::FORBIDDEN,
    pushes_every_end: false,
    announce,
};

/// POSTs a job's end to its `callback_url`, when it gave one.
fn announce(state: &Arc<State>, due: &Announcement) {
    let (true, Some(callback)) = (due.phase.is_terminal(), due.callback_url.clone()) else {
        return;
    };
    let body = query_body(&due.phase, due.url.as_deref());
    let state = Arc::clone(state);
    tokio::spawn(async move {
        if post_json(&callback, &body).await {
            state.count(ShortApi, Count::Callback);
        }
    });
}

const CREATE: &str = "/api/v1/job/create";
const QUERY: &str = "/api/v1/job/query";

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route(CREATE, post(create))
        .route(QUERY, get(query))
}

/// ShortAPI answers refusals with HTTP 200 and a non-zero `code`.
fn refuse(state: &State, code: u16, message: &str) -> Response {
    state.count(ShortApi, Count::Rejected);
    Json(json!({ "code": code, "message": message, "data": null })).into_response()
}

async fn create(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    guarded(
        &state,
        ShortApi,
        Operation::Create,
        &headers,
        CREATE,
        || async {
            state.count(ShortApi, Count::Create);
            let body: Value = match serde_json::from_slice(&body) {
                Ok(body) => body,
                Err(e) => return refuse(&state, 400, &format!("the body is not JSON: {e}")),
            };
            let model = body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(schema) = schemas::model(ShortApi, model) else {
                let known = schemas::models(ShortApi).join(", ");
                return refuse(
                    &state,
                    400,
                    &format!("unknown model {model:?}; the sandbox has: {known}"),
                );
            };
            let errors = schema.check(&body);
            if !errors.is_empty() {
                return refuse(&state, 400, &format!("invalid args: {}", errors.join("; ")));
            }
            let args = &body["args"];
            let echo = args
                .get("video")
                .and_then(Value::as_str)
                .and_then(|v| state.echo_of(v));
            let seconds = billed_seconds(args, echo.as_deref());
            let mode = args.get("mode").and_then(Value::as_str).unwrap_or("pro");
            let id = state.hex_id(24);
            let faults = state.job_faults(ShortApi);
            state.create_job(
                NewJob {
                    provider: ShortApi,
                    id: id.clone(),
                    model: model.to_owned(),
                    callback_url: body
                        .get("callback_url")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    echo,
                    failure: None,
                    seconds,
                    body: None,
                },
                &faults,
            );
            Json(json!({
                "code": 0,
                "data": { "amount": amount(model, mode, seconds), "job_id": id },
            }))
            .into_response()
        },
    )
    .await
}

/// The seconds ShortAPI bills: an edit's input length (rounded), or the
/// requested duration.
fn billed_seconds(args: &Value, echo: Option<&[u8]>) -> u32 {
    if args.get("action").and_then(Value::as_str) == Some("edit")
        && let Some(seconds) = echo.and_then(crate::video_seconds)
    {
        return seconds;
    }
    match args.get("duration") {
        Some(Value::String(s)) => s.parse().unwrap_or(5),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(5),
        _ => 5,
    }
}

/// The charge as the pages price it, in dollars: per second, except O1
/// image-to-video pro, priced per request.
fn amount(model: &str, mode: &str, seconds: u32) -> String {
    let micros_per_second: u64 = match (model, mode) {
        ("kwaivgi/kling-o1/video-to-video", "std") => 110_000,
        ("kwaivgi/kling-o3/video-to-video", "std") => 107_000,
        ("kwaivgi/kling-o1/image-to-video", "std") => 75_000,
        ("kwaivgi/kling-o1/image-to-video", _) => return "0.1".to_owned(),
        _ => 143_000,
    };
    let micros = micros_per_second * u64::from(seconds);
    let fraction = format!("{:06}", micros % 1_000_000);
    format!("{}.{}", micros / 1_000_000, fraction.trim_end_matches('0'))
        .trim_end_matches('.')
        .to_owned()
}

async fn query(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    guarded(&state, ShortApi, Operation::Status, &headers, QUERY, || async {
        state.count(ShortApi, Count::Status);
        let id = params.get("id").map(String::as_str).unwrap_or_default();
        match state.job_view(ShortApi, id) {
            Some(view) => Json(query_body(&view.phase, view.url.as_deref())).into_response(),
            None => Json(json!({ "code": 404, "message": format!("job {id:?} not found"), "data": null }))
                .into_response(),
        }
    })
    .await
}

/// The query envelope, also the body of the callback POST.
pub(crate) fn query_body(phase: &Phase, url: Option<&str>) -> Value {
    let data = match phase {
        Phase::Queued => json!({ "status": 0 }),
        Phase::Running => json!({ "status": 1 }),
        Phase::Succeeded => json!({ "status": 2, "result": { "videos": [{ "url": url }] } }),
        Phase::Failed(reason) => json!({ "status": 3, "refunded": true, "message": reason }),
        Phase::Cancelled => json!({ "status": 3, "refunded": true, "message": "cancelled" }),
    };
    json!({ "code": 0, "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_follow_the_published_prices() {
        assert_eq!(amount("kwaivgi/kling-o1/video-to-video", "pro", 5), "0.715");
        assert_eq!(amount("kwaivgi/kling-o1/video-to-video", "std", 10), "1.1");
        assert_eq!(amount("kwaivgi/kling-o3/video-to-video", "std", 3), "0.321");
        assert_eq!(amount("kwaivgi/kling-o1/image-to-video", "std", 4), "0.3");
        assert_eq!(amount("kwaivgi/kling-o1/image-to-video", "pro", 10), "0.1");
    }
}
