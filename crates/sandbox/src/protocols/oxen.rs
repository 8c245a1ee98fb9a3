//! Oxen.ai: the async queue (`POST /api/ai/queue`, `GET` and `DELETE
//! /api/ai/queue/{id}`), the event stream (`GET /api/events`), and the
//! hub's generation list and records (`GET /api/ai/generations`,
//! `GET /api/ai/generations/{id}`), with what each job cost.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

use crate::Provider::Oxen;
use crate::faults::Operation;
use crate::protocol::{Protocol, error, guarded};
use crate::schemas;
use crate::schemas::published;
use crate::state::{Count, JobView, NewJob, Phase, State, StreamEvent};

/// Oxen.ai, as the sandbox speaks it.
pub(super) const PROTOCOL: Protocol = Protocol {
    name: "oxen",
    key_scheme: "Bearer",
    routes,
    error_body: |status, message, _| {
        json!({
            "error": {
                "type": error_type(status),
                "title": status.canonical_reason().unwrap_or("Error"),
                "detail": message,
            },
            "status": "error",
            "status_message": message,
        })
    },
    schemas: &[
        (
            "kling-video-o1-video-to-video-edit",
            published!("oxen/kling-video-o1-video-to-video-edit.json"),
        ),
        (
            "kling-video-o1-image-to-video",
            published!("oxen/kling-video-o1-image-to-video.json"),
        ),
        (
            "kling-video-o1-reference-to-video",
            published!("oxen/kling-video-o1-reference-to-video.json"),
        ),
        (
            "kling-video-o3-omni",
            published!("oxen/kling-video-o3-omni.json"),
        ),
    ],
    // The queue's envelope: the fields every queued job takes.
    envelope: Some(published!("oxen/queue-create.json")),
    // Oxen's result URLs answer 404 when expired.
    expired: StatusCode::NOT_FOUND,
    pushes_every_end: true,
    announce: |state, due| announce(state, &due.id, &due.phase, due.url.as_deref()),
};

fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        404 => "not_found",
        429 => "rate_limited",
        _ => "internal_error",
    }
}

const QUEUE: &str = "/api/ai/queue";
const EVENTS: &str = "/api/events";
const GENERATIONS: &str = "/api/ai/generations";

/// What the sandbox charges an Oxen job per second of video, in
/// micro-dollars: $0.10. Oxen publishes no per-second price for its Kling
/// models; this is the sandbox's own figure, so that tests can check exact
/// amounts.
pub(crate) const MICROS_PER_SECOND: u64 = 100_000;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route(QUEUE, post(enqueue))
        .route("/api/ai/queue/{id}", get(show).delete(cancel))
        .route(EVENTS, get(events))
        .route(GENERATIONS, get(list))
        .route("/api/ai/generations/{id}", get(record))
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
        let envelope = schemas::check_envelope(Oxen, &body);
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
                body: Some(body),
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
        Json(Value::Object(entry(&state, &view))).into_response()
    })
    .await
}

/// A queue entry's fields (`QueueGenerationResponse`).
fn entry(state: &State, view: &JobView) -> serde_json::Map<String, Value> {
    let unix = |at: Duration| state.started_unix + at.as_secs();
    let enqueued = view.created_at;
    let started = enqueued + view.run_for / 4;
    let completed = enqueued + view.run_for;
    let (started_at, completed_at) = match &view.phase {
        Phase::Queued | Phase::Cancelled => (None, None),
        Phase::Running => (Some(unix(started)), None),
        Phase::Succeeded | Phase::Failed(_) => (Some(unix(started)), Some(unix(completed))),
    };
    let error_message = match &view.phase {
        Phase::Failed(reason) => Some(reason.clone()),
        _ => None,
    };
    let entry = json!({
        "generation_id": view.id,
        "model_name": view.model,
        "media_type": "video",
        "status": status_word(&view.phase),
        "result_url": view.url,
        "error_message": error_message,
        "enqueued_at": unix(enqueued),
        "started_at": started_at,
        "completed_at": completed_at,
    });
    match entry {
        Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    }
}

fn status_word(phase: &Phase) -> &'static str {
    match phase {
        Phase::Queued => "queued",
        Phase::Running => "processing",
        Phase::Succeeded => "succeeded",
        Phase::Failed(_) => "failed",
        Phase::Cancelled => "cancelled",
    }
}

/// What a job cost, in micro-dollars: charged once it has succeeded, at
/// [`MICROS_PER_SECOND`].
fn cost_micros(view: &JobView) -> Option<u64> {
    (view.phase == Phase::Succeeded).then(|| MICROS_PER_SECOND * u64::from(view.seconds))
}

/// Dollars as the hub writes them: a decimal string, `"0.50"`.
fn dollars(micros: u64) -> String {
    kling_core::Usd::from_micros(micros)
        .to_string()
        .trim_start_matches('$')
        .to_owned()
}

/// A generation row (the published `GenerationsListResponse` row, also
/// `GenerationsShowResponse.generation`): the enqueue's parameters merged
/// in at the top level, then the entry's fields, the charge and the user.
fn row(state: &State, view: &JobView) -> Value {
    let mut row = match &view.body {
        Some(Value::Object(body)) => body.clone(),
        _ => serde_json::Map::new(),
    };
    // The model shows as `model_name`.
    row.remove("model");
    for name in ["target_namespace", "target_repo", "target_directory"] {
        row.entry(name).or_insert(Value::Null);
    }
    row.extend(entry(state, view));
    row.insert(
        "cost".to_owned(),
        cost_micros(view).map_or(Value::Null, |micros| Value::from(dollars(micros))),
    );
    row.insert("user_id".to_owned(), Value::Null);
    row.insert("username".to_owned(), Value::from("sandbox"));
    row.insert("user_image".to_owned(), Value::Null);
    Value::Object(row)
}

fn bad_query(message: &str) -> Response {
    error(Oxen, StatusCode::BAD_REQUEST, message, GENERATIONS)
}

/// `GET /api/ai/generations`: the jobs, newest first, filtered by `model`,
/// `status` and `media_type`, a page at a time (`page` from 1, `page_size`
/// 1 to 1000, default 50), with the filtered set's `total_cost`.
async fn list(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    guarded(&state, Oxen, Operation::Lookup, &headers, GENERATIONS, || async {
        state.count(Oxen, Count::Lookup);
        let number = |name: &str, default: u64, max: u64| match params.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("{name} must be a whole number from 1 to {max}, not {text:?}")),
        };
        let (page, page_size) = match (number("page", 1, u64::MAX), number("page_size", 50, 1000)) {
            (Ok(page), Ok(size)) => (page, size),
            (Err(message), _) | (_, Err(message)) => return bad_query(&message),
        };
        let status = params.get("status").map(String::as_str);
        if let Some(word) = status
            && !["queued", "processing", "succeeded", "failed", "cancelled"].contains(&word)
        {
            return bad_query(&format!(
                "status must be one of queued, processing, succeeded, failed, cancelled, not {word:?}"
            ));
        }
        let media_type = params.get("media_type").map(String::as_str);
        if let Some(kind) = media_type
            && !["image", "video"].contains(&kind)
        {
            return bad_query(&format!("media_type must be image or video, not {kind:?}"));
        }
        let model = params.get("model");
        let chosen: Vec<JobView> = state
            .job_views(Oxen)
            .into_iter()
            .filter(|view| model.is_none_or(|m| *m == view.model))
            .filter(|view| status.is_none_or(|s| s == status_word(&view.phase)))
            // The sandbox makes videos only.
            .filter(|_| media_type.is_none_or(|kind| kind == "video"))
            .collect();
        let total = chosen.len() as u64;
        let charged: Vec<u64> = chosen.iter().filter_map(cost_micros).collect();
        let total_cost = (!charged.is_empty()).then(|| dollars(charged.iter().sum()));
        let skip = usize::try_from((page - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
        let rows: Vec<Value> = chosen
            .iter()
            .skip(skip)
            .take(usize::try_from(page_size).unwrap_or(usize::MAX))
            .map(|view| row(&state, view))
            .collect();
        Json(json!({
            "count": rows.len(),
            "generations": rows,
            "page_number": page,
            "page_size": page_size,
            // As the hub's paginator counts: one page even when empty.
            "total_pages": total.div_ceil(page_size).max(1),
            "total_entries": total,
            "total_cost": total_cost,
        }))
        .into_response()
    })
    .await
}

/// `GET /api/ai/generations/{id}`: one row under `generation`.
async fn record(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    guarded(
        &state,
        Oxen,
        Operation::Lookup,
        &headers,
        GENERATIONS,
        || async {
            state.count(Oxen, Count::Lookup);
            let Some(view) = state.job_view(Oxen, &id) else {
                return not_found(&id);
            };
            Json(json!({
                "generation": row(&state, &view),
                "status": "success",
                "status_message": "resource_found",
            }))
            .into_response()
        },
    )
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
