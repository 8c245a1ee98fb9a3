//! AI/ML API: `POST /v2/video/generations` and
//! `GET /v2/video/generations?generation_id=`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::Provider::AimlApi;
use crate::faults::Operation;
use crate::protocol::{Protocol, error, guarded, request_id, timestamp};
use crate::schemas;
use crate::schemas::published;
use crate::state::{Count, NewJob, Phase, State};

/// AI/ML API, as the sandbox speaks it.
pub(super) const PROTOCOL: Protocol = Protocol {
    name: "aimlapi",
    key_scheme: "Bearer",
    routes,
    error_body: |status, message, path| {
        json!({
            "message": message,
            "path": path,
            "requestId": request_id(),
            "statusCode": status.as_u16(),
            "timestamp": timestamp(),
        })
    },
    schemas: &[
        (
            "klingai/video-o1-video-to-video-edit",
            published!("aimlapi/video-o1-video-to-video-edit.json"),
        ),
        (
            "klingai/video-o1-video-to-video-reference",
            published!("aimlapi/video-o1-video-to-video-reference.json"),
        ),
        (
            "klingai/video-o1-reference-to-video",
            published!("aimlapi/video-o1-reference-to-video.json"),
        ),
        (
            "klingai/video-o1-image-to-video",
            published!("aimlapi/video-o1-image-to-video.json"),
        ),
    ],
    envelope: None,
    // Signed CDN URLs answer 403 when expired.
    expired: StatusCode::FORBIDDEN,
    pushes_every_end: false,
    announce: |_, _| {},
};

const PATH: &str = "/v2/video/generations";

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new().route(PATH, get(fetch).post(create))
}

fn refuse(state: &State, message: &str) -> Response {
    state.count(AimlApi, Count::Rejected);
    error(AimlApi, StatusCode::BAD_REQUEST, message, PATH)
}

async fn create(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    guarded(
        &state,
        AimlApi,
        Operation::Create,
        &headers,
        PATH,
        || async {
            state.count(AimlApi, Count::Create);
            let body: Value = match serde_json::from_slice(&body) {
                Ok(body) => body,
                Err(e) => return refuse(&state, &format!("the body is not JSON: {e}")),
            };
            let model = body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(schema) = schemas::model(AimlApi, model) else {
                let known = schemas::models(AimlApi).join(", ");
                return refuse(
                    &state,
                    &format!("unknown model {model:?}; the sandbox has: {known}"),
                );
            };
            let errors = schema.check(&body);
            if !errors.is_empty() {
                return refuse(&state, &errors.join("; "));
            }
            let echo = body
                .get("video_url")
                .and_then(Value::as_str)
                .and_then(|v| state.echo_of(v));
            let seconds = match body.get("duration").and_then(Value::as_u64) {
                Some(d) => u32::try_from(d).unwrap_or(5),
                None => echo.as_deref().and_then(crate::video_seconds).unwrap_or(5),
            };
            // The id carries the model, as AI/ML API's do.
            let id = format!("{}:{model}", state.uuid());
            let faults = state.job_faults(AimlApi);
            state.create_job(
                NewJob {
                    provider: AimlApi,
                    id: id.clone(),
                    model: model.to_owned(),
                    callback_url: None,
                    echo,
                    failure: None,
                    seconds,
                    body: None,
                },
                &faults,
            );
            Json(json!({ "id": id, "status": "queued" })).into_response()
        },
    )
    .await
}

async fn fetch(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    guarded(
        &state,
        AimlApi,
        Operation::Status,
        &headers,
        PATH,
        || async {
            state.count(AimlApi, Count::Status);
            let id = params
                .get("generation_id")
                .map(String::as_str)
                .unwrap_or_default();
            let Some(view) = state.job_view(AimlApi, id) else {
                return error(
                    AimlApi,
                    StatusCode::NOT_FOUND,
                    &format!("generation {id:?} not found"),
                    PATH,
                );
            };
            let body = match &view.phase {
                Phase::Queued => json!({ "id": id, "status": "queued" }),
                Phase::Running => json!({ "id": id, "status": "generating" }),
                Phase::Succeeded => json!({
                    "id": id,
                    "status": "completed",
                    "video": { "url": view.url },
                    "meta": { "usage": { "credits_used": view.seconds * 10_000 } },
                }),
                Phase::Failed(reason) => json!({
                    "id": id,
                    "status": "error",
                    "error": { "name": "GenerationError", "message": reason },
                }),
                Phase::Cancelled => json!({
                    "id": id,
                    "status": "error",
                    "error": { "name": "GenerationError", "message": "cancelled" },
                }),
            };
            Json(body).into_response()
        },
    )
    .await
}
