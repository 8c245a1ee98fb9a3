//! The Oxen.ai adapter: Kling O1 and O3 on <https://hub.oxen.ai>'s async
//! queue.
//!
//! It maps a neutral [`Request`] to one of Oxen's Kling models (O1 edit,
//! image-to-video and reference-to-video; O3 omni for edit and reference
//! through `video_mode`), enqueues it (`POST /api/ai/queue`), and learns
//! of its end from Oxen's server-sent events (`GET /api/events`, opened
//! before enqueueing since Oxen does not replay), polling
//! (`GET /api/ai/queue/{id}`) when the stream drops or goes quiet. Jobs can
//! be cancelled (`DELETE /api/ai/queue/{id}`).
//!
//! What Oxen charged for a job is on its generation record
//! (`GET /api/ai/generations/{id}`, [`Provider::charge`]), and a create
//! whose answer was lost can be found again among the generations
//! (`GET /api/ai/generations`, [`Provider::find_lost`]): each row carries
//! the parameters it was enqueued with.
//!
//! Oxen checks a model's parameters only when the job runs, so every local
//! rule here is the only early check there is: nothing is enqueued before
//! all of them pass. Oxen fetches inputs by URL; local files need an
//! uploader (see the `kling` facade).
//!
//! ```
//! use kling_core::{EditRequest, Media, Model, Request};
//! use kling_core::provider::Provider;
//! use kling_oxen::Oxen;
//!
//! let oxen = Oxen::new("ox-…".into())?;
//! let request = Request::from(EditRequest::new(
//!     Media::url("https://example.com/in.mp4"),
//!     "Make [@Video1] snowy",
//! ).model(Model::O3));
//! let call = oxen.prepare(&oxen.capabilities().validate(&request)?)?;
//! assert_eq!(call.url, "https://hub.oxen.ai/api/ai/queue");
//! assert_eq!(call.body["model"], "kling-video-o3-omni");
//! assert_eq!(call.body["video_mode"], "edit");
//! assert_eq!(call.body["prompt"], "Make @Video1 snowy");
//! # Ok::<(), kling_core::Error>(())
//! ```

#![deny(missing_docs)]

mod events;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kling_core::probe::ImageFormat;
use kling_core::prompt::{Prompt, Syntax};
use kling_core::provider::{
    Capabilities, Feature, Found, LostCreate, Offering, PreparedCall, Provider, PushFuture,
    read_answer, require_url,
};
use kling_core::{
    Charge, Checked, Error, JobHandle, JobState, JobStatus, Mode, Model, Request, Task, Usd,
};
use kling_http::{ApiClient, Descriptor, SecretString};
use serde_json::Value;

use crate::events::Events;
use crate::wire::{
    Completed, Enqueued, Generation, GenerationList, GenerationRow, GenerationShow, VideoMode,
};

/// The provider's name in job handles and on the command line.
const NAME: &str = "oxen";
/// Oxen.ai's API.
const BASE_URL: &str = "https://hub.oxen.ai";

const O1_EDIT: &str = "kling-video-o1-video-to-video-edit";
const O1_FRAMES: &str = "kling-video-o1-image-to-video";
const O1_REFERENCE: &str = "kling-video-o1-reference-to-video";
const O3_OMNI: &str = "kling-video-o3-omni";

const QUEUE: &str = "/api/ai/queue";
const GENERATIONS: &str = "/api/ai/generations";

/// How far before a lost create's `sent_at` its generation may appear to
/// have been enqueued, for clocks that disagree: rows enqueued earlier are
/// not considered.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(600);
/// Rows asked per page when looking for a lost create.
const LOOKUP_PAGE_SIZE: u64 = 100;
/// Pages looked through at most (newest first) before the lookup gives up.
const LOOKUP_MAX_PAGES: u64 = 20;

/// No `mode` field is published: the models run Kling's default, pro.
const PRO_ONLY: &[Mode] = &[Mode::Pro];
/// The O1 models' published `duration` enum.
const O1_DURATIONS: &[u32] = &[5, 10];

/// How long the event stream may say nothing (Oxen sends a keep-alive
/// every 15 s) before it counts as lost.
pub const DEFAULT_SILENCE_LIMIT: Duration = Duration::from_secs(45);

/// Oxen's Kling catalogue. Oxen publishes no prices per model here:
/// estimates are unknown.
const CATALOGUE: &[Offering] = &[
    Offering::new(Task::Edit, Model::O1, O1_EDIT)
        .features(&[Feature::Images, Feature::Elements, Feature::KeepAudio])
        .modes(PRO_ONLY),
    Offering::new(Task::Edit, Model::O3, O3_OMNI)
        .features(&[Feature::Images, Feature::Elements])
        .modes(PRO_ONLY),
    Offering::new(Task::Refer, Model::O3, O3_OMNI)
        .features(&[Feature::Images, Feature::Elements])
        .modes(PRO_ONLY),
    Offering::new(Task::Animate, Model::O1, O1_FRAMES)
        .features(&[Feature::LastFrame])
        .modes(PRO_ONLY)
        .durations(O1_DURATIONS),
    Offering::new(Task::Compose, Model::O1, O1_REFERENCE)
        .features(&[Feature::Images, Feature::Elements])
        .modes(PRO_ONLY)
        .durations(O1_DURATIONS),
];

/// What Oxen offers: cancel, the lookup of a lost create, pushed events,
/// and GIF images besides JPEG, PNG and WebP.
const CAPABILITIES: Capabilities = Capabilities::new(NAME, CATALOGUE)
    .with_cancel()
    .with_lookup()
    .with_push()
    .with_image_formats(&[
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Webp,
        ImageFormat::Gif,
    ]);

/// Oxen.ai, described for the facade's list of providers.
///
/// ```
/// let oxen = kling_oxen::DESCRIPTOR;
/// assert_eq!(oxen.name(), "oxen");
/// assert!(oxen.capabilities.lookup && oxen.capabilities.push && oxen.capabilities.cancel);
/// ```
pub const DESCRIPTOR: Descriptor =
    Descriptor::new(CAPABILITIES, |api| Arc::new(Oxen::with_client(api)))
        .title("Oxen.ai")
        .package(env!("CARGO_PKG_NAME"))
        .key_variable("OXEN_API_KEY")
        .base_url(BASE_URL)
        .wire_schemas(wire::body_schemas)
        .openapi_create_path(QUEUE)
        .read_answers(|bytes| {
            let mut statuses = Vec::new();
            if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
                let _ = parse_charge(&value);
                statuses.extend(parse_generation(value).ok());
            }
            if let Ok(text) = std::str::from_utf8(bytes) {
                statuses.extend(parse_event(text).ok().map(|(_, status)| status));
            }
            statuses
        });

/// The Oxen.ai adapter. Clones share one event stream.
#[derive(Debug, Clone)]
pub struct Oxen {
    api: ApiClient,
    events: Option<Arc<Events>>,
}

impl Oxen {
    /// An adapter for Oxen.ai with `key`.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built.
    pub fn new(key: SecretString) -> Result<Self, Error> {
        Self::with_base_url(BASE_URL, key)
    }

    /// An adapter for an Oxen-compatible API at `base_url` (the sandbox, a
    /// proxy).
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built.
    pub fn with_base_url(base_url: &str, key: SecretString) -> Result<Self, Error> {
        Ok(Self::with_client(ApiClient::new(
            NAME,
            base_url,
            Some(key),
        )?))
    }

    /// Uses `api` as built by the caller (retry policy, clock).
    pub fn with_client(api: ApiClient) -> Self {
        let events = Arc::new(Events::new(api.clone(), DEFAULT_SILENCE_LIMIT));
        Oxen {
            api,
            events: Some(events),
        }
    }

    /// Counts the event stream as lost after `limit` without a byte.
    #[must_use]
    pub fn silence_limit(mut self, limit: Duration) -> Self {
        self.events = Some(Arc::new(Events::new(self.api.clone(), limit)));
        self
    }

    /// Learns of job ends by polling only, without the event stream.
    #[must_use]
    pub fn without_events(mut self) -> Self {
        self.events = None;
        self
    }
}

fn to_value<T: serde::Serialize>(body: &T) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// Oxen's queue body for `request` on `model`.
fn body(request: &Request, model: &str) -> Result<Value, Error> {
    let prompt = Prompt::parse(request.prompt()).render(Syntax::At);
    let model = model.to_owned();
    let duration = request
        .duration()
        .unwrap_or(kling_core::request::DEFAULT_DURATION_SECS);
    let aspect_ratio = request.aspect_ratio().unwrap_or_default().to_string();
    let media = request.wire_media(|field, media| require_url(NAME, field, media))?;
    let input_video = media.video.unwrap_or_default();
    let input_image = media.images;
    let elements: Vec<wire::Element> = media.elements.into_iter().map(Into::into).collect();
    let value = match request {
        Request::Edit(edit) if edit.model == Model::O1 => to_value(&wire::EditBody {
            model,
            prompt,
            input_video,
            input_image,
            elements,
            keep_audio: request.keep_audio().unwrap_or(false),
        }),
        Request::Edit(_) => to_value(&wire::OmniBody {
            model,
            prompt,
            video_mode: VideoMode::Edit,
            input_video,
            input_image,
            elements,
            aspect_ratio: None,
            duration: None,
        }),
        Request::Refer(_) => to_value(&wire::OmniBody {
            model,
            prompt,
            video_mode: VideoMode::Reference,
            input_video,
            input_image,
            elements,
            aspect_ratio: Some(aspect_ratio),
            duration: Some(duration),
        }),
        Request::Animate(_) => {
            let mut frames = input_image.into_iter();
            to_value(&wire::FramesBody {
                model,
                prompt,
                input_image: frames.next().unwrap_or_default(),
                tail_image_url: frames.next(),
                duration,
            })
        }
        Request::Compose(_) => to_value(&wire::ReferenceBody {
            model,
            prompt,
            input_image,
            elements,
            aspect_ratio,
            duration,
        }),
        _ => {
            return Err(Error::unsupported(
                NAME,
                format!("the {} task", request.task()),
            ));
        }
    };
    Ok(value)
}

/// Reads a queue entry (`GET /api/ai/queue/{id}`) as a [`JobStatus`]:
/// `queued`, `processing`, `succeeded` (with `result_url`), `failed` (with
/// `error_message`), `cancelled`. Any other status is an error, never a
/// success.
///
/// ```
/// use kling_core::JobState;
/// use serde_json::json;
///
/// let status = kling_oxen::parse_generation(json!({
///     "generation_id": "4b1d",
///     "model_name": "kling-video-o3-omni",
///     "media_type": "video",
///     "status": "cancelled",
///     "enqueued_at": 1_790_000_000,
/// }))?;
/// assert_eq!(status.state, JobState::Cancelled);
/// # Ok::<(), kling_core::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Protocol`] when the body is not a queue entry, has an unknown
/// status, or succeeded without a URL.
pub fn parse_generation(raw: Value) -> Result<JobStatus, Error> {
    let protocol = |message: String| Error::protocol(NAME, message, raw.to_string());
    let generation: Generation = read_answer(NAME, "an Oxen queue entry", &raw)?;
    let state = match generation.status.as_str() {
        "queued" => JobState::Queued,
        "processing" => JobState::Running,
        "succeeded" => succeeded(generation.result_url).map_err(protocol)?,
        "failed" => failed(generation.error_message),
        "cancelled" => JobState::Cancelled,
        other => {
            return Err(protocol(format!(
                "unknown status {other:?} (known: queued, processing, succeeded, failed, \
                 cancelled)"
            )));
        }
    };
    Ok(JobStatus::new(state, raw))
}

fn succeeded(url: Option<String>) -> Result<JobState, String> {
    match url {
        Some(url) if !url.is_empty() => Ok(JobState::Succeeded { outputs: vec![url] }),
        _ => Err("succeeded without a result URL".to_owned()),
    }
}

fn failed(reason: Option<String>) -> JobState {
    JobState::Failed {
        reason: reason.unwrap_or_else(|| "Oxen reported a failure without details".to_owned()),
        refunded: None,
    }
}

/// Reads a `media_generation_completed` event's data: the generation's
/// id and its final status.
///
/// # Errors
///
/// [`Error::Protocol`] when the data is not that event's shape.
pub fn parse_event(data: &str) -> Result<(String, JobStatus), Error> {
    let protocol = |message: String| Error::protocol(NAME, message, data);
    let raw: Value = serde_json::from_str(data)
        .map_err(|e| protocol(format!("the event's data is not JSON: {e}")))?;
    let event: Completed = read_answer(NAME, "a completion event", &raw)?;
    let state = match event.status.as_str() {
        "succeeded" => succeeded(event.url).map_err(protocol)?,
        "failed" => failed(event.error),
        other => return Err(protocol(format!("unknown completion status {other:?}"))),
    };
    Ok((event.generation_id, JobStatus::new(state, raw)))
}

/// Reads a generation record (`GET /api/ai/generations/{id}`) for what
/// Oxen charged: its `cost`, in dollars, or `None` while it is `null`.
///
/// ```
/// use kling_core::{Charge, Usd};
/// use serde_json::json;
///
/// let record = json!({
///     "generation": {
///         "generation_id": "4b1d",
///         "model_name": "kling-video-o3-omni",
///         "media_type": "video",
///         "status": "succeeded",
///         "enqueued_at": 1_790_000_000,
///         "cost": "0.84",
///         "prompt": "Make @Video1 snowy",
///     },
///     "status": "success",
///     "status_message": "resource_found",
/// });
/// assert_eq!(kling_oxen::parse_charge(&record)?, Some(Charge::Usd(Usd::from_micros(840_000))));
/// # Ok::<(), kling_core::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Protocol`] when the body is not a generation record or its
/// `cost` is not an amount of dollars.
pub fn parse_charge(raw: &Value) -> Result<Option<Charge>, Error> {
    let show: GenerationShow = read_answer(NAME, "an Oxen generation record", raw)?;
    cost(&show.generation).map_err(|message| Error::protocol(NAME, message, raw.to_string()))
}

/// A row's `cost`, in dollars.
fn cost(row: &GenerationRow) -> Result<Option<Charge>, String> {
    match &row.cost {
        None | Some(Value::Null) => Ok(None),
        Some(cost) => serde_json::from_value::<Usd>(cost.clone())
            .map(|usd| Some(Charge::Usd(usd)))
            .map_err(|e| format!("the cost of generation {} is {e}", row.generation_id)),
    }
}

/// Whether a generation row carries every parameter of `body` (the queue
/// body a request prepares) but `model`, each equal: the hub merges a
/// request's parameters into its rows. Numbers compare by value (`5` and
/// `5.0` are one duration).
fn same_parameters(body: &Value, row: &GenerationRow) -> bool {
    let Some(body) = body.as_object() else {
        return false;
    };
    body.iter()
        .filter(|(name, _)| name.as_str() != "model")
        .all(|(name, sent)| row.params.get(name).is_some_and(|kept| same(sent, kept)))
}

fn same(sent: &Value, kept: &Value) -> bool {
    match (sent, kept) {
        (Value::Number(a), Value::Number(b)) => {
            a == b
                || matches!((a.as_f64(), b.as_f64()), (Some(a), Some(b)) if a.total_cmp(&b).is_eq())
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(name, a)| b.get(name).is_some_and(|b| same(a, b)))
        }
        _ => sent == kept,
    }
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The handle of a generation found in the hub's list.
fn handle(row: GenerationRow) -> JobHandle {
    let job = JobHandle::new(NAME, row.generation_id).with_model(row.model_name);
    match u64::try_from(row.enqueued_at) {
        Ok(secs) => job.with_created_at(UNIX_EPOCH + Duration::from_secs(secs)),
        Err(_) => job,
    }
}

impl Oxen {
    async fn enqueue(&self, model: &str, body: &Value) -> Result<JobHandle, Error> {
        // Subscribe first: Oxen does not replay an event sent before. A
        // stream that cannot open is not fatal; waiting polls instead.
        if let Some(events) = &self.events {
            events.subscribe().await;
        }
        let attempt = self.api.attempt(QUEUE, model);
        let raw = self.api.create(QUEUE, body, &attempt).await?;
        let id = serde_json::from_value::<Enqueued>(raw.clone())
            .ok()
            .and_then(|answer| answer.generations.into_iter().next())
            .map(|queued| queued.generation_id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                attempt.unreadable(format!("the queue's answer has no generation id: {raw}"))
            })?;
        Ok(JobHandle::new(NAME, id)
            .with_model(model)
            .with_created_at(attempt.at()))
    }

    fn entry(id: &str) -> String {
        format!("{QUEUE}/{id}")
    }
}

#[async_trait]
impl Provider for Oxen {
    fn base_url(&self) -> Option<&str> {
        Some(self.api.base_url())
    }

    fn capabilities(&self) -> &Capabilities {
        &CAPABILITIES
    }

    fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error> {
        let offering = CAPABILITIES.accept(checked)?;
        let body = body(checked.request(), offering.wire_model)?;
        Ok(PreparedCall::new(
            "POST",
            self.api.url(QUEUE),
            body,
            offering.wire_model,
        ))
    }

    async fn submit(&self, checked: &Checked) -> Result<JobHandle, Error> {
        let call = self.prepare(checked)?;
        self.enqueue(&call.model, &call.body).await
    }

    async fn status(&self, job: &JobHandle) -> Result<JobStatus, Error> {
        parse_generation(self.api.get(&Self::entry(&job.id), &[]).await?)
    }

    fn push<'a>(&'a self, job: &'a JobHandle) -> Option<PushFuture<'a>> {
        let events = self.events.as_ref()?;
        Some(Box::pin(events.wait_for(&job.id)))
    }

    async fn cancel(&self, job: &JobHandle) -> Result<(), Error> {
        self.api.delete(&Self::entry(&job.id)).await.map(drop)
    }

    /// The `cost` of the job's generation record
    /// (`GET /api/ai/generations/{id}`): what Oxen charged, in dollars,
    /// once it has charged.
    async fn charge(&self, job: &JobHandle) -> Result<Option<Charge>, Error> {
        parse_charge(
            &self
                .api
                .get(&format!("{GENERATIONS}/{}", job.id), &[])
                .await?,
        )
    }

    /// Looks through the generations of the request's model
    /// (`GET /api/ai/generations?model=…&media_type=video`, newest first,
    /// 100 a page) back to [`CLOCK_SKEW_ALLOWANCE`] before `sent_at`, for
    /// rows carrying every parameter of the body the request prepares; the
    /// earliest such row not in `known` is the job. More than 20 pages in
    /// that window is an error, not a `NotFound`: the job may be further
    /// back.
    async fn find_lost(&self, lost: &LostCreate<'_>) -> Result<Found, Error> {
        let call = self.prepare(lost.request)?;
        let since = unix_seconds(lost.sent_at)
            .saturating_sub(i64::try_from(CLOCK_SKEW_ALLOWANCE.as_secs()).unwrap_or(0));
        let page_size = LOOKUP_PAGE_SIZE.to_string();
        let mut earliest: Option<GenerationRow> = None;
        for page in 1..=LOOKUP_MAX_PAGES {
            let page_number = page.to_string();
            let raw = self
                .api
                .get(
                    GENERATIONS,
                    &[
                        ("model", call.model.as_str()),
                        ("media_type", "video"),
                        ("page", &page_number),
                        ("page_size", &page_size),
                    ],
                )
                .await?;
            let rows_page: GenerationList = read_answer(NAME, "a page of Oxen generations", &raw)?;
            let rows = rows_page.generations.len();
            let mut passed_the_window = false;
            for row in rows_page.generations {
                if row.enqueued_at < since {
                    passed_the_window = true;
                    continue;
                }
                let candidate = row.model_name == call.model
                    && !lost.known.contains(&row.generation_id)
                    && same_parameters(&call.body, &row);
                // Newest first: a row listed later with the same second
                // was enqueued earlier.
                if candidate
                    && earliest
                        .as_ref()
                        .is_none_or(|e| row.enqueued_at <= e.enqueued_at)
                {
                    earliest = Some(row);
                }
            }
            let last_page = rows_page.total_pages.is_some_and(|total| page >= total)
                || u64::try_from(rows).map_or(true, |rows| rows < LOOKUP_PAGE_SIZE);
            if passed_the_window || last_page {
                return Ok(earliest.map_or(Found::NotFound, |row| Found::Job(handle(row))));
            }
        }
        Err(Error::protocol(
            NAME,
            format!(
                "more than {} generations of {} since {}: the lookup stops there, and the job \
                 may be further back; look for it on the hub",
                LOOKUP_MAX_PAGES * LOOKUP_PAGE_SIZE,
                call.model,
                kling_core::job::rfc3339(
                    UNIX_EPOCH + Duration::from_secs(u64::try_from(since).unwrap_or(0))
                )
            ),
            "",
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn statuses_map_to_states() {
        for (status, expected) in [
            ("queued", "queued"),
            ("processing", "running"),
            ("failed", "failed"),
            ("cancelled", "cancelled"),
        ] {
            let raw = json!({"generation_id": "g", "status": status});
            assert_eq!(parse_generation(raw).unwrap().state.name(), expected);
        }
        let done = parse_generation(
            json!({"generation_id": "g", "status": "succeeded", "result_url": "https://r.example/v.mp4"}),
        )
        .unwrap();
        assert_eq!(
            done.state,
            JobState::Succeeded {
                outputs: vec!["https://r.example/v.mp4".to_owned()],
            }
        );
        for raw in [
            json!({"generation_id": "g", "status": "succeeded"}),
            json!({"generation_id": "g", "status": "done"}),
            json!({"status": "queued"}),
            json!(null),
        ] {
            assert!(
                matches!(parse_generation(raw.clone()), Err(Error::Protocol { .. })),
                "{raw}"
            );
        }
    }

    fn row(params: Value) -> GenerationRow {
        let mut fields = json!({
            "generation_id": "g",
            "model_name": "kling-video-o3-omni",
            "status": "queued",
            "enqueued_at": 1_790_000_000,
        });
        if let (Some(fields), Value::Object(params)) = (fields.as_object_mut(), params) {
            fields.extend(params);
        }
        serde_json::from_value(fields).unwrap()
    }

    #[test]
    fn rows_match_the_parameters_sent() {
        let body = json!({
            "model": "kling-video-o3-omni",
            "prompt": "Fly over @Video1",
            "video_mode": "reference",
            "input_video": "https://m.example/in.mp4",
            "input_image": ["https://m.example/a.png"],
            "elements": [{"frontal_image_url": "f", "reference_image_urls": ["r"]}],
            "duration": 7,
        });
        let kept = json!({
            "prompt": "Fly over @Video1",
            "video_mode": "reference",
            "input_video": "https://m.example/in.mp4",
            "input_image": ["https://m.example/a.png"],
            "elements": [{"reference_image_urls": ["r"], "frontal_image_url": "f"}],
            "duration": 7.0,
            "seed": null,
        });
        // Extra fields in the row, the model under `model_name`, and 7.0
        // for 7 still match.
        assert!(same_parameters(&body, &row(kept.clone())));
        for (name, other) in [
            ("prompt", json!("Fly over @Video1 ")),
            ("duration", json!(8)),
            ("duration", json!("7")),
            (
                "input_image",
                json!(["https://m.example/a.png", "https://m.example/b.png"]),
            ),
            ("input_image", json!([])),
            (
                "elements",
                json!([{"frontal_image_url": "f", "reference_image_urls": []}]),
            ),
            (
                "elements",
                json!([{"frontal_image_url": "f", "reference_image_urls": ["r"], "x": 1}]),
            ),
            ("video_mode", Value::Null),
        ] {
            let mut changed = kept.clone();
            changed[name] = other.clone();
            assert!(!same_parameters(&body, &row(changed)), "{name}: {other}");
        }
        let mut missing = kept.clone();
        missing.as_object_mut().unwrap().remove("input_video");
        assert!(!same_parameters(&body, &row(missing)));
        assert!(!same_parameters(&json!("not a body"), &row(kept)));
    }

    #[test]
    fn records_give_their_cost() {
        let record = |cost: Value| {
            json!({"generation": {"generation_id": "g", "model_name": "m", "status": "succeeded",
                   "enqueued_at": 1, "cost": cost}, "status": "success"})
        };
        assert_eq!(
            parse_charge(&record(json!("0.7"))).unwrap(),
            Some(Charge::Usd(Usd::from_micros(700_000)))
        );
        assert_eq!(
            parse_charge(&record(json!(1.25))).unwrap(),
            Some(Charge::Usd(Usd::from_micros(1_250_000)))
        );
        assert_eq!(parse_charge(&record(Value::Null)).unwrap(), None);
        for bad in [
            record(json!("-1")),
            record(json!("free")),
            record(json!("0.0000001")),
            json!({"generation_id": "g", "cost": "1"}),
            json!({"generation": {"generation_id": "g"}}),
        ] {
            assert!(
                matches!(parse_charge(&bad), Err(Error::Protocol { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn completion_events_are_read() {
        let (id, status) =
            parse_event(r#"{"generation_id":"g1","status":"failed","error":"nsfw"}"#).unwrap();
        assert_eq!(id, "g1");
        assert_eq!(
            status.state,
            JobState::Failed {
                reason: "nsfw".to_owned(),
                refunded: None
            }
        );
        for data in [
            "not json",
            r#"{"generation_id":"g1","status":"processing"}"#,
            r#"{"generation_id":"g1","status":"succeeded"}"#,
            r#"{"status":"succeeded","url":"u"}"#,
        ] {
            assert!(parse_event(data).is_err(), "{data}");
        }
    }
}
