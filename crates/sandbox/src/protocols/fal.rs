//! fal.ai: the queue (`POST /{endpoint}`; under the app,
//! `GET …/requests/{id}/status`, `…/status/stream`, `…/requests/{id}` and
//! `PUT …/requests/{id}/cancel`), its storage (`POST
//! /storage/upload/initiate`, then a PUT to the presigned URL; or
//! `…/initiate-multipart`, a PUT per part and a POST to complete), and its
//! signed webhooks with the key set that checks them
//! (`GET /.well-known/jwks.json`).
//!
//! As fal's queue does, a submit is accepted once it is JSON, and an input
//! that breaks the endpoint's published schema fails the request when it
//! runs: its status completes with the error, and its result answers 422
//! with fal's `detail` list. fal reports no charge in these answers, so
//! the sandbox reports none either.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use futures_util::StreamExt as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

use crate::Provider::Fal;
use crate::faults::{FaultKind, Operation};
use crate::protocol::{Protocol, apply_faults, dropped, error, guarded, post_signed, timestamp};
use crate::schemas;
use crate::schemas::published;
use crate::state::{Announcement, Count, NewJob, Phase, State};

/// The app every Kling endpoint belongs to.
const APP: &str = "/fal-ai/kling-video";
const INITIATE: &str = "/storage/upload/initiate";
const INITIATE_MULTIPART: &str = "/storage/upload/initiate-multipart";
const JWKS: &str = "/.well-known/jwks.json";

/// fal.ai, as the sandbox speaks it.
pub(super) const PROTOCOL: Protocol = Protocol {
    name: "fal",
    key_scheme: "Key",
    routes,
    error_body: |_, message, _| json!({ "detail": message }),
    schemas: &[
        (
            "fal-ai/kling-video/o1/video-to-video/edit",
            published!("fal/kling-video-o1-video-to-video-edit.json"),
        ),
        (
            "fal-ai/kling-video/o1/standard/video-to-video/edit",
            published!("fal/kling-video-o1-video-to-video-edit.json"),
        ),
        (
            "fal-ai/kling-video/o1/video-to-video/reference",
            published!("fal/kling-video-o1-video-to-video-reference.json"),
        ),
        (
            "fal-ai/kling-video/o1/standard/video-to-video/reference",
            published!("fal/kling-video-o1-video-to-video-reference.json"),
        ),
        (
            "fal-ai/kling-video/o1/image-to-video",
            published!("fal/kling-video-o1-image-to-video.json"),
        ),
        (
            "fal-ai/kling-video/o1/standard/image-to-video",
            published!("fal/kling-video-o1-image-to-video.json"),
        ),
        (
            "fal-ai/kling-video/o1/reference-to-video",
            published!("fal/kling-video-o1-reference-to-video.json"),
        ),
        (
            "fal-ai/kling-video/o1/standard/reference-to-video",
            published!("fal/kling-video-o1-reference-to-video.json"),
        ),
        (
            "fal-ai/kling-video/o3/pro/video-to-video/edit",
            published!("fal/kling-video-o3-video-to-video-edit.json"),
        ),
        (
            "fal-ai/kling-video/o3/standard/video-to-video/edit",
            published!("fal/kling-video-o3-video-to-video-edit.json"),
        ),
        (
            "fal-ai/kling-video/o3/pro/video-to-video/reference",
            published!("fal/kling-video-o3-video-to-video-reference.json"),
        ),
        (
            "fal-ai/kling-video/o3/standard/video-to-video/reference",
            published!("fal/kling-video-o3-video-to-video-reference.json"),
        ),
    ],
    envelope: None,
    // fal's CDN answers 404 for a file it no longer has.
    expired: StatusCode::NOT_FOUND,
    pushes_every_end: false,
    announce,
};

pub(crate) fn routes() -> Router<Arc<State>> {
    let router = PROTOCOL
        .schemas
        .iter()
        .fold(Router::new(), |router, (model, _)| {
            router.route(
                &format!("/{model}"),
                post(
                    move |state: Extract<Arc<State>>,
                          headers: HeaderMap,
                          query: Query<HashMap<String, String>>,
                          body: Bytes| {
                        submit(model, state, headers, query, body)
                    },
                ),
            )
        });
    router
        .route(&format!("{APP}/requests/{{id}}/status"), get(status))
        .route(&format!("{APP}/requests/{{id}}/status/stream"), get(stream))
        .route(&format!("{APP}/requests/{{id}}"), get(result))
        .route(&format!("{APP}/requests/{{id}}/cancel"), put(cancel))
        .route(INITIATE, post(initiate))
        .route(INITIATE_MULTIPART, post(initiate_multipart))
        .route("/storage/put/{id}", put(put_upload))
        .route("/storage/multipart/{id}/complete", post(complete_parts))
        .route("/storage/multipart/{id}/{part}", put(put_part))
        .route(JWKS, get(jwks))
}

/// The key the sandbox signs its webhooks with: one per process, made at
/// first use, published at [`JWKS`]; `None` when the system gives no
/// random numbers (no webhook is sent then, and the key set is empty).
fn signing_key() -> Option<&'static Ed25519KeyPair> {
    static KEY: OnceLock<Option<Ed25519KeyPair>> = OnceLock::new();
    KEY.get_or_init(|| {
        let random = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&random).ok()?;
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).ok()
    })
    .as_ref()
}

fn urls(state: &State, id: &str) -> Value {
    let request = format!("{}/fal{APP}/requests/{id}", state.base_url);
    json!({
        "request_id": id,
        "response_url": request,
        "status_url": format!("{request}/status"),
        "cancel_url": format!("{request}/cancel"),
    })
}

/// fal's validation errors: a `detail` list.
fn invalid(errors: &[String]) -> Value {
    let detail: Vec<Value> = errors
        .iter()
        .map(|msg| json!({ "loc": ["body"], "msg": msg, "type": "value_error" }))
        .collect();
    json!({ "detail": detail })
}

async fn submit(
    model: &'static str,
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let path = format!("/{model}");
    guarded(&state, Fal, Operation::Create, &headers, &path, || async {
        state.count(Fal, Count::Create);
        let body: Value = match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => {
                state.count(Fal, Count::Rejected);
                let answer = invalid(&[format!("the body is not JSON: {e}")]);
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(answer)).into_response();
            }
        };
        let errors = schemas::model(Fal, model)
            .map(|schema| schema.check(&body))
            .unwrap_or_default();
        // Accepted now, failed when it runs, as fal's queue does.
        let failure = (!errors.is_empty()).then(|| errors.join("; "));
        if failure.is_some() {
            state.count(Fal, Count::Rejected);
        }
        let echo = body
            .get("video_url")
            .and_then(Value::as_str)
            .and_then(|v| state.echo_of(v));
        let seconds = match body.get("duration").and_then(Value::as_str) {
            Some(d) => d.parse().unwrap_or(5),
            None => echo.as_deref().and_then(crate::video_seconds).unwrap_or(5),
        };
        let id = state.uuid();
        let faults = state.job_faults(Fal);
        state.create_job(
            NewJob {
                provider: Fal,
                id: id.clone(),
                model: model.to_owned(),
                callback_url: query.get("fal_webhook").cloned(),
                echo,
                failure,
                seconds,
                body: None,
            },
            &faults,
        );
        let mut answer = urls(&state, &id);
        answer["status"] = json!("IN_QUEUE");
        answer["queue_position"] = json!(0);
        Json(answer).into_response()
    })
    .await
}

fn not_found(id: &str) -> Response {
    error(
        Fal,
        StatusCode::NOT_FOUND,
        &format!("Request {id:?} not found"),
        APP,
    )
}

/// A status answer for a job in `phase`.
fn status_body(state: &State, id: &str, phase: &Phase) -> Value {
    let mut body = urls(state, id);
    let (word, extra) = match phase {
        Phase::Queued => ("IN_QUEUE", json!({ "queue_position": 0 })),
        Phase::Running => ("IN_PROGRESS", json!({ "logs": [] })),
        Phase::Succeeded => (
            "COMPLETED",
            json!({ "logs": [], "metrics": { "inference_time": 1.0 } }),
        ),
        Phase::Failed(reason) => (
            "COMPLETED",
            json!({ "logs": [], "metrics": {}, "error": reason }),
        ),
        Phase::Cancelled => (
            "COMPLETED",
            json!({ "logs": [], "metrics": {}, "error": "the request was cancelled", "error_type": "client_cancelled" }),
        ),
    };
    body["status"] = json!(word);
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    body
}

async fn status(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    guarded(&state, Fal, Operation::Status, &headers, APP, || async {
        state.count(Fal, Count::Status);
        match state.job_phase(Fal, &id) {
            Some(phase) => Json(status_body(&state, &id, &phase)).into_response(),
            None => not_found(&id),
        }
    })
    .await
}

/// The result: the video once the request succeeded, fal's 422 once it
/// failed, a 400 before it completed.
async fn result(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    guarded(&state, Fal, Operation::Status, &headers, APP, || async {
        let Some(view) = state.job_view(Fal, &id) else {
            return not_found(&id);
        };
        match (&view.phase, view.url) {
            (Phase::Succeeded, Some(url)) => Json(output(&url)).into_response(),
            (Phase::Failed(reason), _) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(invalid(std::slice::from_ref(reason))),
            )
                .into_response(),
            (Phase::Cancelled, _) => error(
                Fal,
                StatusCode::BAD_REQUEST,
                "the request was cancelled",
                APP,
            ),
            _ => error(
                Fal,
                StatusCode::BAD_REQUEST,
                "the request is still in progress",
                APP,
            ),
        }
    })
    .await
}

fn output(url: &str) -> Value {
    json!({ "video": { "url": url, "content_type": "video/mp4", "file_name": "output.mp4" } })
}

/// The status stream: the status each time it changes, `: ping` between,
/// until it is `COMPLETED`.
async fn stream(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let stream_state = Arc::clone(&state);
    guarded(
        &state,
        Fal,
        Operation::Events,
        &headers,
        APP,
        || async move {
            if stream_state.job_phase(Fal, &id).is_none() {
                return not_found(&id);
            }
            stream_state.count(Fal, Count::Subscription);
            let mut cut = stream_state.cut_streams.subscribe();
            let keep_alive = KeepAlive::new()
                .interval(stream_state.config.keep_alive)
                .text("ping");
            let changes = futures_util::stream::unfold(
                (Arc::clone(&stream_state), id, None::<Phase>, false),
                |(state, id, last, ended)| async move {
                    if ended {
                        return None;
                    }
                    let mut tick = tokio::time::interval(Duration::from_millis(20));
                    loop {
                        tick.tick().await;
                        let phase = state.job_phase(Fal, &id)?;
                        if last.as_ref() != Some(&phase) {
                            let data = status_body(&state, &id, &phase).to_string();
                            let ended = phase.is_terminal();
                            state.count(Fal, Count::Event);
                            let event = Ok::<_, Infallible>(Event::default().data(data));
                            return Some((event, (state, id, Some(phase), ended)));
                        }
                    }
                },
            );
            let stream = changes.take_until(async move {
                let _ = cut.changed().await;
            });
            Sse::new(stream).keep_alive(keep_alive).into_response()
        },
    )
    .await
}

async fn cancel(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    guarded(&state, Fal, Operation::Cancel, &headers, APP, || async {
        state.count(Fal, Count::Cancel);
        let now = state.clock.now();
        // A queued request is cancelled; a running one is told, and runs
        // on to its end, as fal warns a request "may still be executed".
        let phase = state.with_job(Fal, &id, |job| {
            let phase = job.phase(now);
            if phase == Phase::Queued {
                job.cancel();
            }
            phase
        });
        match phase {
            Some(phase) if !phase.is_terminal() => (
                StatusCode::ACCEPTED,
                Json(json!({ "status": "CANCELLATION_REQUESTED" })),
            )
                .into_response(),
            Some(_) => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "status": "ALREADY_COMPLETED" })),
            )
                .into_response(),
            None => not_found(&id),
        }
    })
    .await
}

/// `POST /storage/upload/initiate`: a presigned URL to PUT the file to,
/// and the URL it is then read from.
async fn initiate(state: Extract<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    start_upload(state, headers, body, "put", INITIATE).await
}

/// `POST /storage/upload/initiate-multipart`: as `initiate`, for an upload
/// in parts (`PUT {upload_url path}/{n}`, then `POST …/complete`).
async fn initiate_multipart(
    state: Extract<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    start_upload(state, headers, body, "multipart", INITIATE_MULTIPART).await
}

/// A presigned URL under `/storage/{kind}/{id}`, and the URL the file is
/// then read from.
async fn start_upload(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
    kind: &'static str,
    path: &'static str,
) -> Response {
    guarded(&state, Fal, Operation::Upload, &headers, path, || async {
        let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if asked.get("content_type").and_then(Value::as_str).is_none() {
            return error(
                Fal,
                StatusCode::UNPROCESSABLE_ENTITY,
                "content_type is required",
                path,
            );
        }
        let (id, token) = state.reserve_upload();
        Json(json!({
            "upload_url": format!("{}/fal/storage/{kind}/{id}?token={token}", state.base_url),
            "file_url": state.upload_url(&id),
        }))
        .into_response()
    })
    .await
}

/// What a presigned request must pass before it is read: the faults that
/// hit uploads, and no `Authorization` (signed-URL stores refuse one, so a
/// key sent where it must not go is caught).
async fn presigned(state: &State, headers: &HeaderMap) -> Result<(), Response> {
    match apply_faults(state, Fal, Operation::Upload, "/storage").await {
        Ok(faults) if faults.contains(&FaultKind::Drop) => return Err(dropped()),
        Ok(_) => {}
        Err(answer) => return Err(answer),
    }
    if headers.contains_key(header::AUTHORIZATION) {
        return Err((
            StatusCode::BAD_REQUEST,
            "a presigned URL takes no Authorization header",
        )
            .into_response());
    }
    Ok(())
}

/// `PUT /storage/multipart/{id}/{n}`: part `n`, answered with its etag.
async fn put_part(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path((id, number)): Path<(String, u32)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(answer) = presigned(&state, &headers).await {
        return answer;
    }
    if body.is_empty() || number == 0 {
        return (StatusCode::BAD_REQUEST, "an empty part, or part 0").into_response();
    }
    let token = query.get("token").map(String::as_str).unwrap_or_default();
    match state.add_part(&id, token, number, Arc::from(&body[..])) {
        Some(etag) => Json(json!({ "partNumber": number, "etag": etag })).into_response(),
        None => (StatusCode::FORBIDDEN, "the signature does not match").into_response(),
    }
}

/// `POST /storage/multipart/{id}/complete`: the parts listed, in order.
async fn complete_parts(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(answer) = presigned(&state, &headers).await {
        return answer;
    }
    let listed: Option<Vec<(u32, String)>> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("parts").and_then(Value::as_array).cloned())
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| {
                    let number = u32::try_from(p.get("partNumber")?.as_u64()?).ok()?;
                    Some((number, p.get("etag")?.as_str()?.to_owned()))
                })
                .collect()
        });
    let Some(listed) = listed else {
        return (
            StatusCode::BAD_REQUEST,
            "the body must be {\"parts\": [...]}",
        )
            .into_response();
    };
    let token = query.get("token").map(String::as_str).unwrap_or_default();
    match state.complete_parts(&id, token, &listed) {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

/// The presigned PUT of a whole file.
async fn put_upload(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(answer) = presigned(&state, &headers).await {
        return answer;
    }
    if body.is_empty() {
        return (StatusCode::BAD_REQUEST, "empty upload").into_response();
    }
    let token = query.get("token").map(String::as_str).unwrap_or_default();
    if state.fill_upload(&id, token, Arc::from(&body[..])) {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::FORBIDDEN, "the signature does not match").into_response()
    }
}

/// The public key the webhooks are signed with, as a JWKS.
async fn jwks() -> Json<Value> {
    let keys: Vec<Value> = signing_key()
        .map(|key| {
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.public_key());
            json!({ "kty": "OKP", "crv": "Ed25519", "kid": "sandbox", "x": x })
        })
        .into_iter()
        .collect();
    Json(json!({ "keys": keys }))
}

/// POSTs a job's end to its `fal_webhook`, signed as fal signs it.
fn announce(state: &Arc<State>, due: &Announcement) {
    let (true, Some(webhook), Some(key)) = (
        due.phase.is_terminal(),
        due.callback_url.clone(),
        signing_key(),
    ) else {
        return;
    };
    let body = match (&due.phase, &due.url) {
        (Phase::Succeeded, Some(url)) => json!({
            "request_id": due.id, "gateway_request_id": due.id, "status": "OK", "payload": output(url),
        }),
        (Phase::Failed(reason), _) => json!({
            "request_id": due.id, "gateway_request_id": due.id, "status": "ERROR",
            "error": "Invalid status code: 422", "payload": invalid(std::slice::from_ref(reason)),
        }),
        _ => return,
    }
    .to_string();
    let (user, at) = ("sandbox-user", timestamp());
    let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    let message = format!(
        "{}\n{user}\n{at}\n{}",
        due.id,
        kling_core::lower_hex(digest.as_ref())
    );
    let signature = kling_core::lower_hex(key.sign(message.as_bytes()).as_ref());
    let headers = [
        ("x-fal-webhook-request-id", due.id.clone()),
        ("x-fal-webhook-user-id", user.to_owned()),
        ("x-fal-webhook-timestamp", at),
        ("x-fal-webhook-signature", signature),
    ];
    let state = Arc::clone(state);
    tokio::spawn(async move {
        if post_signed(&webhook, body, &headers).await {
            state.count(Fal, Count::Callback);
        }
    });
}
