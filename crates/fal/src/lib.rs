//! The fal.ai adapter: Kling O1 and O3 on <https://queue.fal.run>'s queue.
//!
//! It maps a neutral [`Request`] to one of fal's Kling endpoints (edit and
//! video reference on O1 and O3, first and last frame and reference
//! images on O1; std and pro each), submits it to the queue
//! (`POST /{endpoint}`), and follows the request under the app it belongs
//! to (`fal-ai/kling-video/requests/{id}`: `/status`, the result, `/cancel`),
//! as fal's queue keys requests by app, not by endpoint.
//!
//! - Local files go up to fal's own storage before the create
//!   ([`FalStorage`]): no bucket to set up.
//! - A job's end comes from fal's status stream (`/status/stream`), with
//!   polling as the safety net, or from fal's webhook (`fal_webhook`) when
//!   the client has a callback receiver: fal signs those, and
//!   [`WebhookVerifier`] checks them against fal's published keys.
//! - `keep_audio` is always sent: fal's O1 endpoints default it to false,
//!   its O3 ones to true, and switching models must not change the result.
//!
//! fal's queue answers say nothing of what a request cost: the estimate,
//! from the published per-second prices, is all there is.
//!
//! ```
//! use kling_core::{EditRequest, Media, Mode, Model, Request};
//! use kling_core::provider::Provider;
//! use kling_fal::Fal;
//!
//! let fal = Fal::new("key".into())?;
//! let request = Request::from(EditRequest::new(
//!     Media::url("https://example.com/in.mp4"),
//!     "Make [@Video1] snowy",
//! ).model(Model::O3).mode(Mode::Std));
//! let call = fal.prepare(&fal.capabilities().validate(&request)?)?;
//! assert_eq!(call.url, "https://queue.fal.run/fal-ai/kling-video/o3/standard/video-to-video/edit");
//! assert_eq!(call.body["prompt"], "Make @Video1 snowy");
//! assert_eq!(call.body["keep_audio"], false);
//! # Ok::<(), kling_core::Error>(())
//! ```

#![deny(missing_docs)]

mod storage;
mod stream;
mod webhook;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kling_core::probe::ImageFormat;
use kling_core::prompt::{Prompt, Syntax};
use kling_core::provider::{
    CallbackVerifier, Capabilities, Feature, Offering, PreparedCall, Price, Provider, PushFuture,
    Pushed, Uploader, read_answer, require_url,
};
use kling_core::{Checked, Error, JobHandle, JobState, JobStatus, Mode, Model, Request, Task, Usd};
use kling_http::{ApiClient, Descriptor, KeyScheme, SecretString};
use serde_json::Value;

pub use storage::FalStorage;
pub use stream::DEFAULT_SILENCE_LIMIT;
pub use webhook::{TIMESTAMP_TOLERANCE, WebhookVerifier};

use crate::wire::{Output, QueueStatus, Submitted};

/// The provider's name in job handles and on the command line.
pub(crate) const NAME: &str = "fal";
/// fal's queue.
const BASE_URL: &str = "https://queue.fal.run";
/// fal's REST address, where uploads start.
pub const REST_URL: &str = "https://rest.fal.ai";
/// Where fal publishes the keys its webhooks are signed with.
pub const JWKS_URL: &str = "https://rest.fal.ai/.well-known/jwks.json";
/// Where the JWKS sits under an address other than fal's own (the sandbox,
/// a proxy).
const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The app every Kling endpoint belongs to: its requests are followed
/// under it.
const APP: &str = "fal-ai/kling-video";
/// When the prices below were read from fal's model pages.
const PRICES_AS_OF: &str = "2026-11-24";

pub(crate) const O1_EDIT: &str = "fal-ai/kling-video/o1/video-to-video/edit";
pub(crate) const O1_REFER: &str = "fal-ai/kling-video/o1/video-to-video/reference";
pub(crate) const O1_FRAMES: &str = "fal-ai/kling-video/o1/image-to-video";
pub(crate) const O1_COMPOSE: &str = "fal-ai/kling-video/o1/reference-to-video";
pub(crate) const O3_EDIT: &str = "fal-ai/kling-video/o3/pro/video-to-video/edit";
pub(crate) const O3_REFER: &str = "fal-ai/kling-video/o3/pro/video-to-video/reference";

/// Each pro endpoint (the offering's wire model) and its std twin, which
/// takes the same input.
const STD_TWINS: &[(&str, &str)] = &[
    (
        O1_EDIT,
        "fal-ai/kling-video/o1/standard/video-to-video/edit",
    ),
    (
        O1_REFER,
        "fal-ai/kling-video/o1/standard/video-to-video/reference",
    ),
    (O1_FRAMES, "fal-ai/kling-video/o1/standard/image-to-video"),
    (
        O1_COMPOSE,
        "fal-ai/kling-video/o1/standard/reference-to-video",
    ),
    (
        O3_EDIT,
        "fal-ai/kling-video/o3/standard/video-to-video/edit",
    ),
    (
        O3_REFER,
        "fal-ai/kling-video/o3/standard/video-to-video/reference",
    ),
];

/// How often, and how many times, a cancel is confirmed by the status.
const CANCEL_CHECKS: u32 = 3;
const CANCEL_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The output lengths fal's O1 endpoints publish: 3 to 10 seconds.
const DURATIONS: &[u32] = &[3, 4, 5, 6, 7, 8, 9, 10];

const fn per_second(micros: u64) -> Price {
    Price::PerSecond(Usd::from_micros(micros))
}

/// fal's Kling catalogue, with the per-second prices its model pages
/// publish; the others are unknown (none published on fal's own pages).
const CATALOGUE: &[Offering] = &[
    Offering::new(Task::Edit, Model::O1, O1_EDIT)
        .features(&[Feature::Images, Feature::Elements, Feature::KeepAudio])
        .prices(Price::Unknown, per_second(168_000)),
    Offering::new(Task::Refer, Model::O1, O1_REFER)
        .features(&[Feature::Images, Feature::Elements, Feature::KeepAudio])
        .durations(DURATIONS),
    Offering::new(Task::Animate, Model::O1, O1_FRAMES)
        .features(&[Feature::LastFrame])
        .durations(DURATIONS)
        .prices(per_second(84_000), per_second(112_000)),
    Offering::new(Task::Compose, Model::O1, O1_COMPOSE)
        .features(&[Feature::Images, Feature::Elements])
        .durations(DURATIONS)
        .prices(Price::Unknown, per_second(112_000)),
    Offering::new(Task::Edit, Model::O3, O3_EDIT)
        .features(&[Feature::Images, Feature::Elements, Feature::KeepAudio])
        .prices(Price::Unknown, per_second(336_000)),
    Offering::new(Task::Refer, Model::O3, O3_REFER)
        .features(&[Feature::Images, Feature::Elements, Feature::KeepAudio])
        .durations(DURATIONS),
];

/// What fal offers: cancel, its status stream, signed webhooks, its own
/// storage for local files, input videos up to 10.05 s, elements with up to
/// 3 other angles, and GIF images besides JPEG, PNG and WebP.
const CAPABILITIES: Capabilities = Capabilities::new(NAME, CATALOGUE)
    .with_cancel()
    .with_push()
    .with_callbacks()
    .with_storage()
    // "Min duration: 3.0s, Max duration: 10.05s" on fal's O1 pages.
    .with_video_max_duration(Duration::from_millis(10_050))
    // "1-3 images supported" for an element's other angles.
    .with_max_element_references(3)
    // Its image-to-video takes 3 to 10 s whether or not a last frame is
    // given.
    .with_single_frame_durations(DURATIONS)
    .with_image_formats(&[
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Webp,
        ImageFormat::Gif,
    ]);

/// fal.ai, described for the facade's list of providers.
///
/// ```
/// let fal = kling_fal::DESCRIPTOR;
/// assert_eq!(fal.name(), "fal");
/// assert_eq!(fal.key_variable, "FAL_KEY");
/// assert!(fal.capabilities.storage && fal.capabilities.push && fal.capabilities.callbacks);
/// ```
pub const DESCRIPTOR: Descriptor =
    Descriptor::new(CAPABILITIES, |api| Arc::new(Fal::with_client(api)))
        .title("fal.ai")
        .package(env!("CARGO_PKG_NAME"))
        .key_variable("FAL_KEY")
        .base_url(BASE_URL)
        .prices_as_of(PRICES_AS_OF)
        .wire_schemas(wire::body_schemas)
        .read_answers(|bytes| {
            let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
                return Vec::new();
            };
            let mut statuses = Vec::new();
            statuses.extend(parse_status(value.clone()).ok().flatten());
            statuses.extend(parse_output(value).ok());
            statuses
        });

/// The fal.ai adapter.
#[derive(Debug, Clone)]
pub struct Fal {
    api: ApiClient,
    storage: Arc<FalStorage>,
    verifier: Arc<WebhookVerifier>,
    /// How long the status stream may be quiet; `None`: polling only.
    silence: Option<Duration>,
}

impl Fal {
    /// An adapter for fal.ai with `key`.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built, or the key cannot be sent.
    pub fn new(key: SecretString) -> Result<Self, Error> {
        Self::with_base_url(BASE_URL, key)
    }

    /// An adapter for a fal-compatible queue at `base_url` (the sandbox, a
    /// proxy). Uploads and the webhook keys are then looked for at the
    /// same address (`/storage/upload/initiate`, `/.well-known/jwks.json`).
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built, or the key cannot be sent.
    pub fn with_base_url(base_url: &str, key: SecretString) -> Result<Self, Error> {
        Ok(Self::with_client(ApiClient::new(
            NAME,
            base_url,
            Some(key),
        )?))
    }

    /// Uses `api` as built by the caller (settings, retry policy, timeout),
    /// sending its key as fal wants it (`Authorization: Key …`).
    pub fn with_client(api: ApiClient) -> Self {
        let api = api.with_key_scheme(KeyScheme::Key);
        let own = api.base_url() == BASE_URL;
        let rest = if own { REST_URL } else { api.base_url() };
        let jwks = if own {
            JWKS_URL.to_owned()
        } else {
            api.url(JWKS_PATH)
        };
        // The same address checks as the API's own: `at` refuses nothing
        // the API client accepted, and fal's REST address is https.
        let storage = api.at(rest).unwrap_or_else(|_| api.clone());
        Fal {
            storage: Arc::new(FalStorage::new(storage)),
            verifier: Arc::new(WebhookVerifier::new(api.clone(), jwks)),
            api,
            silence: Some(DEFAULT_SILENCE_LIMIT),
        }
    }

    /// Uploads local files through fal's REST API at `rest_url`.
    ///
    /// # Errors
    ///
    /// For a URL the key must not go to (not https, unless loopback).
    pub fn with_storage_url(mut self, rest_url: &str) -> Result<Self, Error> {
        self.storage = Arc::new(FalStorage::new(self.api.at(rest_url)?));
        Ok(self)
    }

    /// Checks webhook signatures against the keys published at `jwks_url`
    /// (default [`JWKS_URL`]).
    ///
    /// # Errors
    ///
    /// For a URL that is not https (plain http on loopback only): keys
    /// read in the clear could be swapped on the way.
    pub fn with_jwks_url(mut self, jwks_url: &str) -> Result<Self, Error> {
        self.api.at(jwks_url)?;
        self.verifier = Arc::new(WebhookVerifier::new(self.api.clone(), jwks_url));
        Ok(self)
    }

    /// Counts the status stream as lost after `limit` without a byte.
    #[must_use]
    pub fn silence_limit(mut self, limit: Duration) -> Self {
        self.silence = Some(limit);
        self
    }

    /// Learns of job ends by polling (and webhooks) only, without the
    /// status stream.
    #[must_use]
    pub fn without_stream(mut self) -> Self {
        self.silence = None;
        self
    }

    /// A request's path under its app: `…/requests/{id}` and `rest`. An id
    /// is fal's (a UUID): anything but letters, digits, `-` and `_` is
    /// refused, so that an id read from a ledger or typed by hand cannot
    /// steer the key to another path.
    fn request_path(id: &str, rest: &str) -> Result<String, Error> {
        let fits = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !fits {
            return Err(Error::unsupported(
                NAME,
                format!("the request id {id:?} (fal's are UUIDs: letters, digits and dashes)"),
            ));
        }
        Ok(format!("/{APP}/requests/{id}{rest}"))
    }

    /// What a `COMPLETED` status (or any other) means for the job: its
    /// output is fetched when it succeeded.
    async fn settle(&self, job: &JobHandle, raw: Value) -> Result<JobStatus, Error> {
        if let Some(status) = parse_status(raw)? {
            return Ok(status);
        }
        match self.api.get(&Self::request_path(&job.id, "")?, &[]).await {
            Ok(output) => parse_output(output),
            // The result of a request that failed as it ran answers with
            // fal's 422 and its details: the job failed. Any other refusal
            // (a locked account, an answer from before the status caught
            // up) says nothing of the job: it is asked again.
            Err(Error::Rejected {
                status: Some(422),
                message,
                body,
                ..
            }) => Ok(JobStatus::new(
                JobState::Failed {
                    reason: message,
                    refunded: None,
                },
                serde_json::from_str(&body).unwrap_or(Value::String(body)),
            )),
            Err(e) => Err(e),
        }
    }
}

/// The endpoint that runs `offering` in `mode`: the pro endpoint, or its
/// std twin.
fn endpoint(offering: &Offering, mode: Mode) -> &'static str {
    match mode {
        Mode::Std => STD_TWINS
            .iter()
            .find(|(pro, _)| *pro == offering.wire_model)
            .map_or(offering.wire_model, |(_, std)| std),
        _ => offering.wire_model,
    }
}

fn to_value<T: serde::Serialize>(body: &T) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// The endpoint's input for `request`.
fn body(request: &Request) -> Result<Value, Error> {
    let prompt = Prompt::parse(request.prompt()).render(Syntax::At);
    let duration = request
        .duration()
        .unwrap_or(kling_core::request::DEFAULT_DURATION_SECS)
        .to_string();
    let aspect_ratio = request.aspect_ratio().unwrap_or_default().to_string();
    let keep_audio = request.keep_audio().unwrap_or(false);
    let media = request.wire_media(|field, media| require_url(NAME, field, media))?;
    let video_url = media.video.unwrap_or_default();
    let image_urls = media.images;
    let elements: Vec<wire::Element> = media.elements.into_iter().map(Into::into).collect();
    let value = match request {
        Request::Edit(_) => to_value(&wire::EditInput {
            prompt,
            video_url,
            image_urls,
            elements,
            keep_audio,
        }),
        Request::Refer(_) => to_value(&wire::ReferInput {
            prompt,
            video_url,
            image_urls,
            elements,
            keep_audio,
            aspect_ratio,
            duration,
        }),
        Request::Animate(_) => {
            let mut frames = image_urls.into_iter();
            to_value(&wire::FramesInput {
                prompt,
                start_image_url: frames.next().unwrap_or_default(),
                end_image_url: frames.next(),
                duration,
            })
        }
        Request::Compose(_) => to_value(&wire::ComposeInput {
            prompt,
            image_urls,
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

/// Reads a status answer (`…/requests/{id}/status`, or an event of the
/// status stream): `IN_QUEUE` and `IN_PROGRESS` as they are, `COMPLETED`
/// with an `error` as a failure (`client_cancelled` as cancelled), and
/// `None` for a success, whose output is fetched apart
/// ([`parse_output`]).
///
/// ```
/// use kling_core::JobState;
/// use serde_json::json;
///
/// let queued = kling_fal::parse_status(json!({"status": "IN_QUEUE", "queue_position": 3}))?;
/// assert_eq!(queued.map(|s| s.state), Some(JobState::Queued));
/// assert!(kling_fal::parse_status(json!({"status": "COMPLETED"}))?.is_none());
/// # Ok::<(), kling_core::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Protocol`] when the body is not a status or has an unknown
/// one.
pub fn parse_status(raw: Value) -> Result<Option<JobStatus>, Error> {
    let status: QueueStatus = read_answer(NAME, "a fal queue status", &raw)?;
    // Text as it is; details as JSON; nothing (`null`, "") as nothing.
    let text = |value: Option<Value>| match value {
        Some(Value::String(text)) if !text.is_empty() => Some(text),
        Some(Value::Null | Value::String(_)) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let state = match status.status.as_str() {
        "IN_QUEUE" => JobState::Queued,
        "IN_PROGRESS" => JobState::Running,
        "COMPLETED" => match (text(status.error), text(status.error_type)) {
            (_, Some(kind)) if kind == "client_cancelled" => JobState::Cancelled,
            (Some(error), kind) => JobState::Failed {
                reason: match kind {
                    Some(kind) => format!("{error} ({kind})"),
                    None => error,
                },
                refunded: None,
            },
            (None, Some(kind)) => JobState::Failed {
                reason: kind,
                refunded: None,
            },
            (None, None) => return Ok(None),
        },
        other => {
            return Err(Error::protocol(
                NAME,
                format!("unknown status {other:?} (known: IN_QUEUE, IN_PROGRESS, COMPLETED)"),
                raw.to_string(),
            ));
        }
    };
    Ok(Some(JobStatus::new(state, raw)))
}

/// Reads a request's result (`…/requests/{id}`): the video's URL.
///
/// ```
/// use serde_json::json;
///
/// let done = kling_fal::parse_output(json!({"video": {"url": "https://v3.fal.media/files/out.mp4"}}))?;
/// assert_eq!(
///     done.state,
///     kling_core::JobState::Succeeded { outputs: vec!["https://v3.fal.media/files/out.mp4".to_owned()] },
/// );
/// # Ok::<(), kling_core::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Protocol`] when it has no video URL.
pub fn parse_output(raw: Value) -> Result<JobStatus, Error> {
    let output: Output = read_answer(NAME, "a fal result", &raw)?;
    if output.video.url.is_empty() {
        return Err(Error::protocol(
            NAME,
            "the result's video has an empty URL".to_owned(),
            raw.to_string(),
        ));
    }
    Ok(JobStatus::new(
        JobState::Succeeded {
            outputs: vec![output.video.url],
        },
        raw,
    ))
}

#[async_trait]
impl Provider for Fal {
    fn base_url(&self) -> Option<&str> {
        Some(self.api.base_url())
    }

    fn capabilities(&self) -> &Capabilities {
        &CAPABILITIES
    }

    /// The submit, with `?fal_webhook=` when the request carries a
    /// callback URL.
    fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error> {
        let offering = CAPABILITIES.accept(checked)?;
        let endpoint = endpoint(offering, checked.request().mode());
        let mut url = self.api.url(&format!("/{endpoint}"));
        if let Some(callback) = checked.callback_url() {
            url.push_str("?fal_webhook=");
            url.extend(url::form_urlencoded::byte_serialize(callback.as_bytes()));
        }
        Ok(PreparedCall::new(
            "POST",
            url,
            body(checked.request())?,
            endpoint,
        ))
    }

    async fn submit(&self, checked: &Checked) -> Result<JobHandle, Error> {
        let call = self.prepare(checked)?;
        let path = format!("/{}", call.model);
        // The attempt names the endpoint, never the webhook's token.
        let attempt = self.api.attempt(&path, &call.model);
        let with_query = call.url.strip_prefix(self.api.base_url()).unwrap_or(&path);
        let raw = self.api.create(with_query, &call.body, &attempt).await?;
        let id = serde_json::from_value::<Submitted>(raw.clone())
            .ok()
            .map(|answer| answer.request_id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                attempt.unreadable(format!("the queue's answer has no request_id: {raw}"))
            })?;
        Ok(JobHandle::new(NAME, id)
            .with_model(call.model)
            .with_created_at(attempt.at()))
    }

    async fn status(&self, job: &JobHandle) -> Result<JobStatus, Error> {
        let raw = self
            .api
            .get(&Self::request_path(&job.id, "/status")?, &[])
            .await?;
        self.settle(job, raw).await
    }

    /// Follows fal's status stream until the request completes, then
    /// reads it as [`Provider::status`] does.
    fn push<'a>(&'a self, job: &'a JobHandle) -> Option<PushFuture<'a>> {
        let silence = self.silence?;
        Some(Box::pin(async move {
            let Ok(path) = Self::request_path(&job.id, "/status/stream") else {
                return Pushed::Lost;
            };
            let Some(completed) = stream::until_completed(&self.api, &path, silence).await else {
                return Pushed::Lost;
            };
            match self.settle(job, completed).await {
                Ok(status) => Pushed::Ended(status),
                Err(_) => Pushed::Lost,
            }
        }))
    }

    /// `PUT …/requests/{id}/cancel`, then the status until it shows the
    /// request cancelled. fal takes a cancel (202) for a request that may
    /// still run: unless the status confirms it within a few seconds, this
    /// is an error saying the job may still finish and be charged. A
    /// request already completed is refused, saying so.
    async fn cancel(&self, job: &JobHandle) -> Result<(), Error> {
        match self.api.put(&Self::request_path(&job.id, "/cancel")?).await {
            Ok(_) => {}
            Err(Error::Rejected {
                provider,
                status,
                body,
                ..
            }) if body.contains("ALREADY_COMPLETED") => {
                return Err(Error::Rejected {
                    provider,
                    status,
                    message: "the request has already completed: there is nothing to cancel"
                        .to_owned(),
                    body,
                });
            }
            Err(e) => return Err(e),
        }
        let mut last = String::new();
        for check in 0..CANCEL_CHECKS {
            if check > 0 {
                tokio::time::sleep(CANCEL_CHECK_EVERY).await;
            }
            let status = self.status(job).await?;
            match status.state {
                JobState::Cancelled => return Ok(()),
                JobState::Queued | JobState::Running => status.state.name().clone_into(&mut last),
                other => {
                    return Err(Error::Rejected {
                        provider: NAME.to_owned(),
                        status: None,
                        message: format!(
                            "fal took the cancel, but the request ended {} first",
                            other.name()
                        ),
                        body: status.raw.to_string(),
                    });
                }
            }
        }
        Err(Error::Rejected {
            provider: NAME.to_owned(),
            status: Some(202),
            message: format!(
                "fal took the cancel, but the request is still {last}: it may finish and be \
                 charged; follow it with `kling wait`"
            ),
            body: String::new(),
        })
    }

    fn storage(&self) -> Option<Arc<dyn Uploader>> {
        Some(self.storage.clone())
    }

    fn callback_verifier(&self) -> Option<Arc<dyn CallbackVerifier>> {
        Some(self.verifier.clone())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn statuses_map_to_states() {
        let state = |raw: Value| parse_status(raw).unwrap().map(|s| s.state);
        assert_eq!(
            state(json!({"status": "IN_QUEUE", "queue_position": 0})),
            Some(JobState::Queued)
        );
        assert_eq!(
            state(json!({"status": "IN_PROGRESS", "logs": []})),
            Some(JobState::Running)
        );
        assert_eq!(state(json!({"status": "COMPLETED", "metrics": {}})), None);
        assert_eq!(
            state(
                json!({"status": "COMPLETED", "error": "nsfw", "error_type": "content_policy_violation"})
            ),
            Some(JobState::Failed {
                reason: "nsfw (content_policy_violation)".to_owned(),
                refunded: None
            })
        );
        assert_eq!(
            state(
                json!({"status": "COMPLETED", "error": "cancelled", "error_type": "client_cancelled"})
            ),
            Some(JobState::Cancelled)
        );
        for raw in [
            json!({"status": "DONE"}),
            json!({"queue_position": 1}),
            json!(null),
        ] {
            assert!(
                matches!(parse_status(raw.clone()), Err(Error::Protocol { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn outputs_need_a_video_url() {
        for raw in [
            json!({"video": {"url": ""}}),
            json!({"video": {}}),
            json!({"images": [{"url": "u"}]}),
        ] {
            assert!(
                matches!(parse_output(raw.clone()), Err(Error::Protocol { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn every_offering_has_a_std_twin() {
        for offering in CATALOGUE {
            let std = endpoint(offering, Mode::Std);
            assert_ne!(std, offering.wire_model, "{}", offering.wire_model);
            assert!(std.contains("/standard/"), "{std}");
            assert_eq!(endpoint(offering, Mode::Pro), offering.wire_model);
            assert!(offering.wire_model.starts_with(APP));
        }
    }

    #[test]
    fn the_storage_and_keys_follow_the_address() {
        let fal = Fal::new("k".into()).unwrap();
        assert_eq!(fal.verifier.jwks_url(), JWKS_URL);
        let local = Fal::with_base_url("http://127.0.0.1:9/fal", "k".into()).unwrap();
        assert_eq!(
            local.verifier.jwks_url(),
            "http://127.0.0.1:9/fal/.well-known/jwks.json"
        );
        assert_eq!(local.api.key_scheme(), KeyScheme::Key);
        assert!(
            local
                .clone()
                .with_storage_url("http://storage.example")
                .is_err()
        );
    }
}
