//! The AI/ML API adapter: Kling O1 on <https://api.aimlapi.com>.
//!
//! It maps a neutral [`Request`] to the body of one of AI/ML API's four
//! Kling O1 models, sends local files inline as `data:` URIs (encoded while
//! the body is sent, so a 150 MB video does not sit in memory), and maps
//! the generation's status (`queued`, `generating`, `completed`, `error`)
//! to [`JobStatus`]. Job ids keep AI/ML API's `:model` suffix.
//!
//! AI/ML API publishes no `mode` field and durations of 5 or 10 s only: a
//! request for `std` mode or another length is refused before sending.
//!
//! ```
//! use kling_core::{EditRequest, Media, Request};
//! use kling_core::provider::Provider;
//! use kling_aimlapi::AimlApi;
//!
//! let aimlapi = AimlApi::new("sk-…".into())?;
//! let request = Request::from(EditRequest::new(
//!     Media::url("https://example.com/in.mp4"),
//!     "Make [@Video1] snowy",
//! ));
//! let call = aimlapi.prepare(&aimlapi.capabilities().validate(&request)?)?;
//! assert_eq!(call.url, "https://api.aimlapi.com/v2/video/generations");
//! assert_eq!(call.body["model"], "klingai/video-o1-video-to-video-edit");
//! assert_eq!(call.body["prompt"], "Make @Video1 snowy");
//! assert_eq!(call.body["keep_audio"], false);
//! # Ok::<(), kling_core::Error>(())
//! ```

#![deny(missing_docs)]

pub mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use kling_core::prompt::{Prompt, Syntax};
use kling_core::provider::{Capabilities, Feature, Offering, PreparedCall, Provider, read_answer};
use kling_core::{
    AspectRatio, Charge, Checked, Credits, Error, JobHandle, JobState, JobStatus, Media, Mode,
    Model, Request, Task,
};
use kling_http::inline::Inliner;
use kling_http::{ApiClient, Descriptor, SecretString};
use serde_json::Value;

use crate::wire::{Generation, Route};

/// The provider's name in job handles and on the command line.
const NAME: &str = "aimlapi";
/// AI/ML API's API.
const BASE_URL: &str = "https://api.aimlapi.com";

const EDIT: &str = "klingai/video-o1-video-to-video-edit";
const VIDEO_REFERENCE: &str = "klingai/video-o1-video-to-video-reference";
const IMAGE_REFERENCE: &str = "klingai/video-o1-reference-to-video";
const FRAMES: &str = "klingai/video-o1-image-to-video";

const GENERATIONS: &str = "/v2/video/generations";

/// No `mode` field is published: the models run Kling's default, pro.
const PRO_ONLY: &[Mode] = &[Mode::Pro];
/// The published `duration` enum.
const DURATIONS: &[u32] = &[5, 10];

/// AI/ML API's Kling catalogue. No O3 video model is published, and no
/// prices: estimates are unknown.
const CATALOGUE: &[Offering] = &[
    Offering::new(Task::Edit, Model::O1, EDIT)
        .features(&[Feature::Images, Feature::Elements, Feature::KeepAudio])
        .modes(PRO_ONLY),
    Offering::new(Task::Refer, Model::O1, VIDEO_REFERENCE)
        .features(&[Feature::Images, Feature::Elements, Feature::KeepAudio])
        .modes(PRO_ONLY)
        .durations(DURATIONS),
    Offering::new(Task::Animate, Model::O1, FRAMES)
        .features(&[Feature::LastFrame])
        .modes(PRO_ONLY)
        .durations(DURATIONS),
    Offering::new(Task::Compose, Model::O1, IMAGE_REFERENCE)
        .features(&[Feature::Images, Feature::Elements])
        .modes(PRO_ONLY)
        .durations(DURATIONS),
];

/// What AI/ML API offers. Local files go inline, so no uploader is needed.
const CAPABILITIES: Capabilities = Capabilities::new(NAME, CATALOGUE).with_local_files();

/// AI/ML API, described for the facade's list of providers.
///
/// ```
/// let aimlapi = kling_aimlapi::DESCRIPTOR;
/// assert_eq!(aimlapi.name(), "aimlapi");
/// assert!(aimlapi.capabilities.local_files);
/// assert_eq!(aimlapi.prices_as_of, None, "it publishes no price per model");
/// ```
pub const DESCRIPTOR: Descriptor =
    Descriptor::new(CAPABILITIES, |api| Arc::new(AimlApi::with_client(api)))
        .title("AI/ML API")
        .package(env!("CARGO_PKG_NAME"))
        .key_variable("AIMLAPI_KEY")
        .base_url(BASE_URL)
        .wire_schemas(wire::body_schemas)
        .openapi_create_path(GENERATIONS)
        .read_answers(|bytes| {
            serde_json::from_slice(bytes)
                .ok()
                .and_then(|value| parse_generation(value).ok())
                .into_iter()
                .collect()
        });

/// The AI/ML API adapter.
#[derive(Debug, Clone)]
pub struct AimlApi {
    api: ApiClient,
    route: Option<Route>,
}

impl AimlApi {
    /// An adapter for AI/ML API with `key`.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built.
    pub fn new(key: SecretString) -> Result<Self, Error> {
        Self::with_base_url(BASE_URL, key)
    }

    /// An adapter for an AI/ML API-compatible API at `base_url` (the
    /// sandbox, a proxy).
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
        AimlApi { api, route: None }
    }

    /// Sends AI/ML API's `provider` field: which backend runs the jobs.
    /// Left out, AI/ML API picks ([`Route::Auto`]).
    ///
    /// ```
    /// use kling_aimlapi::{AimlApi, wire::Route};
    /// use kling_core::provider::Provider;
    /// use kling_core::{ComposeRequest, Media, Request};
    ///
    /// let aimlapi = AimlApi::new("sk-…".into())?.route(Route::Kling);
    /// let request = Request::from(
    ///     ComposeRequest::new("@Image1 at dawn").image(Media::url("https://example.com/a.png")),
    /// );
    /// let checked = aimlapi.capabilities().validate(&request)?;
    /// assert_eq!(aimlapi.prepare(&checked)?.body["provider"], "kling");
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.route = Some(route);
        self
    }

    /// The create body for `request` on `model`, each media input given
    /// by `media(field, input)`: a URL as it is, a local file as what
    /// stands for it.
    fn body(
        &self,
        request: &Request,
        model: &str,
        media: impl FnMut(&str, &Media) -> Result<String, Error>,
    ) -> Result<Value, Error> {
        let prompt = Prompt::parse(request.prompt()).render(Syntax::At);
        let model = model.to_owned();
        let provider = self.route;
        let duration = request
            .duration()
            .unwrap_or(kling_core::request::DEFAULT_DURATION_SECS);
        let keep_audio = request.keep_audio().unwrap_or(false);
        let aspect_ratio = aspect(request.aspect_ratio().unwrap_or_default());
        let media = request.wire_media(media)?;
        let video_url = media.video.unwrap_or_default();
        let image_list = media.images;
        let elements: Vec<wire::Element> = media.elements.into_iter().map(Into::into).collect();
        let value = match request {
            Request::Edit(_) => to_value(&wire::EditBody {
                model,
                prompt,
                video_url,
                image_list,
                elements,
                keep_audio,
                provider,
            }),
            Request::Refer(_) => to_value(&wire::VideoReferenceBody {
                model,
                prompt,
                video_url,
                image_list,
                elements,
                keep_audio,
                aspect_ratio,
                duration,
                provider,
            }),
            Request::Compose(_) => to_value(&wire::ImageReferenceBody {
                model,
                prompt,
                image_list,
                elements,
                aspect_ratio,
                duration,
                provider,
            }),
            Request::Animate(_) => {
                let mut frames = image_list.into_iter();
                to_value(&wire::FramesBody {
                    model,
                    prompt,
                    image_url: frames.next().unwrap_or_default(),
                    last_image_url: frames.next(),
                    duration,
                    provider,
                })
            }
            _ => {
                return Err(Error::unsupported(
                    NAME,
                    format!("the {} task", request.task()),
                ));
            }
        };
        Ok(value)
    }
}

fn aspect(ratio: AspectRatio) -> wire::AspectRatio {
    match ratio {
        AspectRatio::Portrait => wire::AspectRatio::Portrait,
        AspectRatio::Square => wire::AspectRatio::Square,
        _ => wire::AspectRatio::Landscape,
    }
}

fn to_value<T: serde::Serialize>(body: &T) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// Reads a generation, as the status query or the create answers it, as a
/// [`JobStatus`].
///
/// `queued` and `waiting` are queued, `generating` is running, `completed`
/// succeeded (with `video.url`), `error` failed (with `error.name` and
/// `error.message`); any other status is an error, never a success.
///
/// ```
/// use kling_core::JobState;
/// use serde_json::json;
///
/// let status = kling_aimlapi::parse_generation(json!({
///     "id": "7f0c:klingai/video-o1-video-to-video-edit",
///     "status": "error",
///     "error": {"name": "GenerationError", "message": "content policy"},
/// }))?;
/// assert_eq!(
///     status.state,
///     JobState::Failed { reason: "GenerationError: content policy".into(), refunded: None },
/// );
/// # Ok::<(), kling_core::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Protocol`] when the body is not a generation, has an unknown
/// status, or completed without a URL.
///
/// The credits the job used (`meta.usage.credits_used`), in whatever state
/// the answer gives them, become [`JobStatus::charge`]; a value that is not
/// an amount of credits is left out (the raw answer keeps it) rather than
/// make the status unreadable.
///
/// ```
/// use kling_core::{Charge, Credits};
/// use serde_json::json;
///
/// let status = kling_aimlapi::parse_generation(json!({
///     "id": "7f0c:klingai/video-o1-image-to-video",
///     "status": "completed",
///     "video": {"url": "https://cdn.example/v.mp4"},
///     "meta": {"usage": {"credits_used": 126000}},
/// }))?;
/// assert_eq!(status.charge, Some(Charge::Credits(Credits::from_millionths(126_000_000_000))));
/// # Ok::<(), kling_core::Error>(())
/// ```
pub fn parse_generation(raw: Value) -> Result<JobStatus, Error> {
    let protocol = |message: String| Error::protocol(NAME, message, raw.to_string());
    let generation: Generation = read_answer(NAME, "an AI/ML API generation", &raw)?;
    let state = match generation.status.as_str() {
        "queued" | "waiting" => JobState::Queued,
        "generating" => JobState::Running,
        "completed" => match generation.video {
            Some(video) if !video.url.is_empty() => JobState::Succeeded {
                outputs: vec![video.url],
            },
            _ => return Err(protocol("completed without a video URL".to_owned())),
        },
        "error" => JobState::Failed {
            reason: generation.error.map_or_else(
                || "AI/ML API reported an error without details".to_owned(),
                |e| format!("{}: {}", e.name, e.message),
            ),
            refunded: None,
        },
        other => {
            return Err(protocol(format!(
                "unknown generation status {other:?} (known: queued, waiting, generating, \
                 completed, error)"
            )));
        }
    };
    let charge = raw
        .pointer("/meta/usage/credits_used")
        .and_then(|used| Credits::from_json(used).ok());
    let status = JobStatus::new(state, raw);
    Ok(match charge {
        Some(used) => status.with_charge(Charge::Credits(used)),
        None => status,
    })
}

/// AI/ML API answers 403 when the account has no credits left: say so.
fn explain(error: Error) -> Error {
    match error {
        Error::Rejected {
            provider,
            status: Some(403),
            message,
            body,
        } => Error::rejected(
            &provider,
            Some(403),
            format!("{message} (AI/ML API answers 403 when the account is out of credits)"),
            body,
        ),
        other => other,
    }
}

#[async_trait]
impl Provider for AimlApi {
    fn base_url(&self) -> Option<&str> {
        Some(self.api.base_url())
    }

    fn capabilities(&self) -> &Capabilities {
        &CAPABILITIES
    }

    fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error> {
        let offering = CAPABILITIES.accept(checked)?;
        let body = self.body(
            checked.request(),
            offering.wire_model,
            |field, media: &Media| match media {
                Media::Url(url) => Ok(url.clone()),
                local => Inliner::describe(field, local, checked.probed(field)),
            },
        )?;
        Ok(PreparedCall::new(
            "POST",
            self.api.url(GENERATIONS),
            body,
            offering.wire_model,
        ))
    }

    async fn submit(&self, checked: &Checked) -> Result<JobHandle, Error> {
        let offering = CAPABILITIES.accept(checked)?;
        let mut inliner = Inliner::new();
        let body = self.body(
            checked.request(),
            offering.wire_model,
            |field, media: &Media| match media {
                Media::Url(url) => Ok(url.clone()),
                local => inliner.place(field, local, checked.probed(field)),
            },
        )?;
        let attempt = self.api.attempt(GENERATIONS, offering.wire_model);
        let raw = self
            .api
            .create_inline(GENERATIONS, inliner.finish(&body), &attempt)
            .await
            .map_err(explain)?;
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                attempt.unreadable(format!("the create answer has no generation id: {raw}"))
            })?;
        Ok(JobHandle::new(NAME, id)
            .with_model(offering.wire_model)
            .with_created_at(attempt.at()))
    }

    async fn status(&self, job: &JobHandle) -> Result<JobStatus, Error> {
        let raw = self
            .api
            .get(GENERATIONS, &[("generation_id", &job.id)])
            .await
            .map_err(explain)?;
        parse_generation(raw)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn statuses_map_to_states() {
        let id = "abc:klingai/video-o1-image-to-video";
        for (raw, expected) in [
            (json!({"id": id, "status": "queued"}), "queued"),
            (json!({"id": id, "status": "waiting"}), "queued"),
            (json!({"id": id, "status": "generating"}), "running"),
            (
                json!({"id": id, "status": "completed", "video": {"url": "https://cdn.example/v.mp4"}, "meta": {"usage": {"credits_used": 5}}}),
                "succeeded",
            ),
            (json!({"id": id, "status": "error"}), "failed"),
        ] {
            let status = parse_generation(raw.clone()).unwrap();
            assert_eq!(status.state.name(), expected, "{raw}");
            assert_eq!(status.raw, raw);
        }
    }

    #[test]
    fn credits_used_become_the_charge_in_any_state() {
        let id = "abc:klingai/video-o1-image-to-video";
        for (raw, millionths) in [
            (
                json!({"id": id, "status": "completed", "video": {"url": "https://cdn.example/v.mp4"}, "meta": {"usage": {"credits_used": 126_000}}}),
                Some(126_000_000_000),
            ),
            (
                json!({"id": id, "status": "generating", "meta": {"usage": {"credits_used": 0.5}}}),
                Some(500_000),
            ),
            (
                json!({"id": id, "status": "error", "meta": {"usage": {"credits_used": "12.25"}}}),
                Some(12_250_000),
            ),
            (json!({"id": id, "status": "queued"}), None),
            (json!({"id": id, "status": "queued", "meta": null}), None),
            // Not an amount: left out, the status still reads.
            (
                json!({"id": id, "status": "queued", "meta": {"usage": {"credits_used": -3}}}),
                None,
            ),
            (
                json!({"id": id, "status": "queued", "meta": {"usage": {"credits_used": [1]}}}),
                None,
            ),
        ] {
            let status = parse_generation(raw.clone()).unwrap();
            assert_eq!(
                status.charge,
                millionths.map(|m| Charge::Credits(Credits::from_millionths(m))),
                "{raw}"
            );
        }
    }

    #[test]
    fn odd_answers_are_errors_never_success() {
        for raw in [
            json!({"id": "x", "status": "done"}),
            json!({"id": "x", "status": "completed"}),
            json!({"id": "x", "status": "completed", "video": {"url": ""}}),
            json!({"status": "queued"}),
            json!({"id": 5, "status": "queued"}),
            json!("queued"),
        ] {
            let err = parse_generation(raw.clone()).unwrap_err();
            assert!(matches!(err, Error::Protocol { .. }), "{raw}: {err}");
        }
    }

    #[test]
    fn ids_keep_their_model_suffix() {
        let text = "aimlapi:60ac:klingai/video-o1-image-to-video";
        let handle: JobHandle = text.parse().unwrap();
        assert_eq!(handle.id, "60ac:klingai/video-o1-image-to-video");
        assert_eq!(handle.to_string(), text);
    }

    #[test]
    fn a_403_says_credits() {
        let err = explain(Error::Rejected {
            provider: NAME.to_owned(),
            status: Some(403),
            message: "Forbidden".to_owned(),
            body: String::new(),
        });
        assert_eq!(
            err.to_string(),
            "aimlapi refused the request (HTTP 403): Forbidden (AI/ML API answers 403 when the \
             account is out of credits)"
        );
    }
}
