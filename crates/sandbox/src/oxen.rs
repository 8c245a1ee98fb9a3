//! Oxen.ai: the async queue (`POST /api/ai/queue`, `GET` and `DELETE
//! /api/ai/queue/{id}`) and the event stream (`GET /api/events`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

use crate::Provider::Oxen;
use crate::faults::Operation;
use crate::protocol::{error, guarded};
use crate::schemas;
use crate::state::{Count, NewJob, Phase, State, StreamEvent};

const QUEUE: &str = "/api/ai/queue";
const EVENTS: &str = "/api/events";

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route(QUEUE, post(enqueue))
        .route("/api/ai/queue/{id}", get(show).delete(cancel))
        .route(EVENTS, get(events))
}

fn refuse(state: &State, message: &str) -> Response {
    state.count(Oxen, Count::Rejected);
    error(Oxen, StatusCode::BAD_REQUEST, message, QUEUE)
}

async fn enqueue(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    guarded(&state, Oxen, Operation::Create, &headers, QUEUE, || async {
        state.count(Oxen, Count::Create);
        let body: Value = match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => return refuse(&state, &format!("the body is not JSON: {e}")),
        };
        // The envelope is checked at once; the model's own parameters only
        // when the job runs, as Oxen does.
        let envelope = schemas::check_oxen_envelope(&body);
        if !envelope.is_empty() {
            return refuse(&state, &envelope.join("; "));
        }
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(schema) = schemas::model(Oxen, model) else {
            let known = schemas::models(Oxen).join(", ");
            return refuse(
                &state,
                &format!("unknown model {model:?}; the sandbox has: {known}"),
            );
        };
        let errors = schema.check(&body);
        let failure =
            (!errors.is_empty()).then(|| format!("invalid parameters: {}", errors.join("; ")));
        if failure.is_some() {
            state.count(Oxen, Count::Rejected);
        }
        let echo = body
            .get("input_video")
            .and_then(Value::as_str)
            .and_then(|v| state.echo_of(v));
        let seconds = match body.get("duration").and_then(Value::as_u64) {
            Some(d) => u32::try_from(d).unwrap_or(5),
            None => echo.as_deref().and_then(crate::video_seconds).unwrap_or(5),
        };
        let id = state.uuid();
        let faults = state.job_faults(Oxen);
        state.create_job(
            NewJob {
                provider: Oxen,
                id: id.clone(),
                model: model.to_owned(),
                callback_url: None,
                echo,
                failure,
                seconds,
            },
            &faults,
        );
        Json(json!({ "generations": [{ "generation_id": id, "status": "queued" }] }))
            .into_response()
    })
    .await
}

fn not_found(id: &str) -> Response {
    error(
        Oxen,
        StatusCode::NOT_FOUND,
        &format!("generation {id:?} not found"),
        QUEUE,
    )
}

async fn show(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    guarded(&state, Oxen, Operation::Status, &headers, QUEUE, || async {
        state.count(Oxen, Count::Status);
        let Some(view) = state.job_view(Oxen, &id) else {
            return not_found(&id);
        };
        let unix = |at: Duration| state.started_unix + at.as_secs();
        let enqueued = view.created_at;
        let started = enqueued + view.run_for / 4;
        let completed = enqueued + view.run_for;
        let (status, started_at, completed_at) = match &view.phase {
            Phase::Queued => ("queued", None, None),
            Phase::Running => ("processing", Some(unix(started)), None),
            Phase::Succeeded => ("succeeded", Some(unix(started)), Some(unix(completed))),
            Phase::Failed(_) => ("failed", Some(unix(started)), Some(unix(completed))),
            Phase::Cancelled => ("cancelled", None, None),
        };
        let error_message = match &view.phase {
            Phase::Failed(reason) => Some(reason.clone()),
            _ => None,
        };
        Json(json!({
            "generation_id": id,
            "model_name": view.model,
            "media_type": "video",
            "status": status,
            "result_url": view.url,
            "error_message": error_message,
            "enqueued_at": unix(enqueued),
            "started_at": started_at,
            "completed_at": completed_at,
        }))
        .into_response()
    })
    .await
}

async fn cancel(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    guarded(&state, Oxen, Operation::Cancel, &headers, QUEUE, || async {
        state.count(Oxen, Count::Cancel);
        let now = state.clock.now();
        let found = state.with_job(Oxen, &id, |job| {
            if !job.phase(now).is_terminal() {
                job.cancel();
            }
        });
        match found {
            Some(()) => Json(json!({ "status": "success", "generation_id": id })).into_response(),
            None => not_found(&id),
        }
    })
    .await
}

async fn events(Extract(state): Extract<Arc<State>>, headers: HeaderMap) -> Response {
    let stream_state = Arc::clone(&state);
    guarded(
        &state,
        Oxen,
        Operation::Events,
        &headers,
        EVENTS,
        || async move {
            stream_state.count(Oxen, Count::Subscription);
            let mut cut = stream_state.cut_streams.subscribe();
            let keep_alive = KeepAlive::new()
                .interval(stream_state.config.keep_alive)
                .text("keep-alive");
            let stream = BroadcastStream::new(stream_state.events.subscribe()).filter_map(
                |message| async move {
                    // A subscriber that falls behind loses events, as with any live stream.
                    let StreamEvent { event, data } = message.ok()?;
                    Some(Ok::<_, Infallible>(
                        Event::default().event(event).data(data),
                    ))
                },
            );
            let stream = stream.take_until(async move {
                let _ = cut.changed().await;
            });
            Sse::new(stream).keep_alive(keep_alive).into_response()
        },
    )
    .await
}

/// Sends Oxen's event for a job that started or ended. Nothing is sent
/// for cancelled jobs, as Oxen documents.
pub(crate) fn announce(state: &State, id: &str, phase: &Phase, url: Option<&str>) {
    let (event, data) = match phase {
        Phase::Running => (
            "media_generation_started",
            json!({ "generation_id": id, "status": "processing" }),
        ),
        Phase::Succeeded => (
            "media_generation_completed",
            json!({ "generation_id": id, "status": "succeeded", "url": url }),
        ),
        Phase::Failed(reason) => (
            "media_generation_completed",
            json!({ "generation_id": id, "status": "failed", "error": reason }),
        ),
        Phase::Queued | Phase::Cancelled => return,
    };
    state.count(Oxen, Count::Event);
    // No subscriber is not an error: Oxen does not replay either.
    let _ = state.events.send(StreamEvent {
        event,
        data: data.to_string(),
    });
}
