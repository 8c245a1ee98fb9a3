//! The ShortAPI adapter: Kling O1 and O3 on <https://api.shortapi.ai>.
//!
//! It maps a neutral [`Request`] to ShortAPI's exact body (`[@Image1]`
//! references, O1's string and O3's integer `duration`, defaults sent
//! explicitly), sends it once, and maps ShortAPI's numeric statuses (0 and
//! 1 in progress, 2 succeeded, anything else failed) to [`JobStatus`].
//!
//! ```
//! use kling_core::{EditRequest, Media, Request};
//! use kling_core::provider::Provider;
//! use kling_shortapi::ShortApi;
//!
//! let shortapi = ShortApi::new("sk-…".into())?;
//! let request = Request::from(EditRequest::new(
//!     Media::url("https://example.com/in.mp4"),
//!     "Make @Video1 snowy",
//! ));
//! let call = shortapi.prepare(&shortapi.capabilities().validate(&request)?)?;
//! assert_eq!(call.url, "https://api.shortapi.ai/api/v1/job/create");
//! assert_eq!(call.body["args"]["prompt"], "Make [@Video1] snowy");
//! # Ok::<(), kling_core::Error>(())
//! ```

#![deny(missing_docs)]

pub mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use kling_core::prompt::{Prompt, Syntax};
use kling_core::provider::{
    Capabilities, Feature, Offering, PreparedCall, Price, Provider, read_answer, require_url,
};
use kling_core::{
    AspectRatio, Charge, Checked, Error, JobHandle, JobState, JobStatus, Mode, Model, Request,
    Task, Usd,
};
use kling_http::{ApiClient, Descriptor, SecretString};
use serde_json::Value;

use crate::wire::{CreateAnswer, CreateBody, ImageAction, QueryAnswer, VideoAction};

/// The provider's name in job handles and on the command line.
const NAME: &str = "shortapi";
/// ShortAPI's API.
const BASE_URL: &str = "https://api.shortapi.ai";

const O1_V2V: &str = "kwaivgi/kling-o1/video-to-video";
const O3_V2V: &str = "kwaivgi/kling-o3/video-to-video";
const O1_I2V: &str = "kwaivgi/kling-o1/image-to-video";

const CREATE: &str = "/api/v1/job/create";
const QUERY: &str = "/api/v1/job/query";

/// When the prices below were read from ShortAPI's model pages.
const PRICES_AS_OF: &str = "2026-11-22";

const fn per_second(micros: u64) -> Price {
    Price::PerSecond(Usd::from_micros(micros))
}

const VIDEO_FEATURES_O1: &[Feature] = &[Feature::Images, Feature::Elements, Feature::KeepAudio];
// O3's page lists no keep_audio.
const VIDEO_FEATURES_O3: &[Feature] = &[Feature::Images, Feature::Elements];

/// ShortAPI's catalogue and prices, as its model pages publish them
/// (`PRICES_AS_OF`). O1 image-to-video in pro mode is published as "$0.1
/// per request", and kept so.
const CATALOGUE: &[Offering] = &[
    Offering::new(Task::Edit, Model::O1, O1_V2V)
        .features(VIDEO_FEATURES_O1)
        .prices(per_second(110_000), per_second(143_000)),
    Offering::new(Task::Refer, Model::O1, O1_V2V)
        .features(VIDEO_FEATURES_O1)
        .prices(per_second(110_000), per_second(143_000)),
    Offering::new(Task::Edit, Model::O3, O3_V2V)
        .features(VIDEO_FEATURES_O3)
        .prices(per_second(107_000), per_second(143_000)),
    Offering::new(Task::Refer, Model::O3, O3_V2V)
        .features(VIDEO_FEATURES_O3)
        .prices(per_second(107_000), per_second(143_000)),
    Offering::new(Task::Animate, Model::O1, O1_I2V)
        .features(&[Feature::LastFrame])
        .prices(
            per_second(75_000),
            Price::PerRequest(Usd::from_micros(100_000)),
        ),
    Offering::new(Task::Compose, Model::O1, O1_I2V)
        .features(&[Feature::Images, Feature::Elements])
        .prices(
            per_second(75_000),
            Price::PerRequest(Usd::from_micros(100_000)),
        ),
];

/// What ShortAPI offers.
const CAPABILITIES: Capabilities = Capabilities::new(NAME, CATALOGUE).with_callbacks();

/// ShortAPI, described for the facade's list of providers.
///
/// ```
/// let shortapi = kling_shortapi::DESCRIPTOR;
/// assert_eq!(shortapi.name(), "shortapi");
/// assert_eq!(shortapi.key_variable, "SHORTAPI_KEY");
/// let adapter = shortapi.connect("http://127.0.0.1:9/shortapi", "key".into())?;
/// assert_eq!(adapter.base_url(), Some("http://127.0.0.1:9/shortapi"));
/// # Ok::<(), kling_core::Error>(())
/// ```
pub const DESCRIPTOR: Descriptor =
    Descriptor::new(CAPABILITIES, |api| Arc::new(ShortApi::with_client(api)))
        .title("ShortAPI")
        .package(env!("CARGO_PKG_NAME"))
        .key_variable("SHORTAPI_KEY")
        .base_url(BASE_URL)
        .prices_as_of(PRICES_AS_OF)
        .wire_schemas(wire::body_schemas)
        .read_answers(|bytes| parse_callback(bytes).into_iter().collect());

/// The ShortAPI adapter.
#[derive(Debug, Clone)]
pub struct ShortApi {
    api: ApiClient,
}

impl ShortApi {
    /// An adapter for ShortAPI's own API with `key`.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built.
    pub fn new(key: SecretString) -> Result<Self, Error> {
        Self::with_base_url(BASE_URL, key)
    }

    /// An adapter for a ShortAPI-compatible API at `base_url` (the sandbox,
    /// a proxy).
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built.
    pub fn with_base_url(base_url: &str, key: SecretString) -> Result<Self, Error> {
        Ok(ShortApi {
            api: ApiClient::new(NAME, base_url, Some(key))?,
        })
    }

    /// Uses `api` as built by the caller (retry policy, clock).
    pub fn with_client(api: ApiClient) -> Self {
        ShortApi { api }
    }
}

impl ShortApi {
    /// Sends a prepared create call as it is, once: what
    /// [`Provider::submit`] does after [`Provider::prepare`]. For callers
    /// that adjust a body by hand; nothing here checks it again.
    ///
    /// The handle carries what ShortAPI says it charged (`data.amount`,
    /// in dollars) as [`JobHandle::charge`], when the answer has it.
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] when ShortAPI answers `code != 0`; a transport
    /// error saying whether the job may exist.
    pub async fn send(&self, call: &PreparedCall) -> Result<JobHandle, Error> {
        let attempt = self.api.attempt(CREATE, &call.model);
        let raw = self.api.create(CREATE, &call.body, &attempt).await?;
        let answer: CreateAnswer = read_answer(NAME, "a ShortAPI create answer", &raw)
            .map_err(|e| attempt.unreadable(e.to_string()))?;
        match (answer.code, answer.data) {
            (0, Some(data)) => {
                let job = JobHandle::new(NAME, data.job_id)
                    .with_model(call.model.clone())
                    .with_created_at(attempt.at());
                // The job exists: an amount that cannot be read is left
                // out (the answer is kept nowhere else), never an error.
                Ok(match data.amount.map(serde_json::from_value::<Usd>) {
                    Some(Ok(amount)) => job.with_charge(Charge::Usd(amount)),
                    _ => job,
                })
            }
            (0, None) => Err(attempt.unreadable(format!("code 0 without a job id: {raw}"))),
            (code, _) => Err(Error::rejected(
                NAME,
                None,
                answer.message.unwrap_or_else(|| format!("code {code}")),
                raw.to_string(),
            )),
        }
    }
}

fn mode(mode: Mode) -> wire::Mode {
    match mode {
        Mode::Std => wire::Mode::Std,
        _ => wire::Mode::Pro,
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

/// ShortAPI's body for `request` on `model`.
///
/// ShortAPI POSTs the query envelope to `callback_url` when the job ends.
/// It signs nothing: the URL must carry an unguessable token, and the body
/// (read with [`parse_callback`]) is confirmed by a status query.
fn body(request: &Request, model: &str, callback_url: Option<&str>) -> Result<Value, Error> {
    let prompt = Prompt::parse(request.prompt()).render(Syntax::Bracketed);
    let callback_url = callback_url.map(str::to_owned);
    let mode = mode(request.mode());
    let refer = request.task() == Task::Refer;
    let media = request.wire_media(|field, media| require_url(NAME, field, media))?;
    let images = media.images;
    let elements: Vec<wire::Element> = media.elements.into_iter().map(Into::into).collect();
    let value = match request {
        Request::Edit(_) | Request::Refer(_) => {
            let video = media.video.unwrap_or_default();
            let action = if refer {
                VideoAction::Refer
            } else {
                VideoAction::Edit
            };
            let aspect_ratio = request.aspect_ratio().map(aspect);
            if model == O3_V2V {
                to_value(&CreateBody {
                    model: model.to_owned(),
                    args: wire::O3VideoArgs {
                        mode,
                        action,
                        prompt,
                        video,
                        images,
                        elements,
                        duration: request.duration(),
                        aspect_ratio,
                    },
                    callback_url,
                })
            } else {
                to_value(&CreateBody {
                    model: model.to_owned(),
                    args: wire::O1VideoArgs {
                        mode,
                        action,
                        prompt,
                        video,
                        images,
                        elements,
                        keep_audio: request.keep_audio().unwrap_or(false),
                        duration: request.duration().map(|d| d.to_string()),
                        aspect_ratio,
                    },
                    callback_url,
                })
            }
        }
        Request::Animate(_) | Request::Compose(_) => {
            let action = if request.task() == Task::Animate {
                ImageAction::Frame
            } else {
                ImageAction::Refer
            };
            to_value(&CreateBody {
                model: model.to_owned(),
                args: wire::O1ImageArgs {
                    mode,
                    action,
                    prompt,
                    duration: request
                        .duration()
                        .unwrap_or(kling_core::request::DEFAULT_DURATION_SECS)
                        .to_string(),
                    images,
                    elements,
                    aspect_ratio: request.aspect_ratio().map(aspect),
                },
                callback_url,
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

/// Reads a query answer, or a callback's body, as a [`JobStatus`].
///
/// # Errors
///
/// [`Error::Rejected`] when `code` is not 0; [`Error::Protocol`] when the
/// body is not ShortAPI's shape or a success carries no URL.
pub fn parse_status(raw: Value) -> Result<JobStatus, Error> {
    let protocol = |message: &str| Error::protocol(NAME, message, raw.to_string());
    let answer: QueryAnswer = read_answer(NAME, "a ShortAPI query answer", &raw)?;
    if answer.code != 0 {
        return Err(Error::rejected(
            NAME,
            None,
            answer
                .message
                .unwrap_or_else(|| format!("code {}", answer.code)),
            raw.to_string(),
        ));
    }
    let data = answer.data.ok_or_else(|| protocol("code 0 without data"))?;
    let state = match data.status {
        0 => JobState::Queued,
        1 => JobState::Running,
        2 => {
            let result = data.result.unwrap_or_default();
            let outputs: Vec<String> = result
                .videos
                .into_iter()
                .chain(result.images)
                .map(|u| u.url)
                .collect();
            if outputs.is_empty() {
                return Err(protocol("status 2 (succeeded) without a result URL"));
            }
            JobState::Succeeded { outputs }
        }
        other => JobState::Failed {
            reason: data
                .message
                .unwrap_or_else(|| format!("ShortAPI status {other}")),
            refunded: data.refunded,
        },
    };
    Ok(JobStatus::new(state, raw))
}

/// Reads the body ShortAPI POSTs to a `callback_url`: the query envelope.
///
/// # Errors
///
/// As [`parse_status`], and [`Error::Protocol`] for a body that is not JSON.
pub fn parse_callback(body: &[u8]) -> Result<JobStatus, Error> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| {
        Error::protocol(
            NAME,
            format!("the callback body is not JSON: {e}"),
            String::from_utf8_lossy(body),
        )
    })?;
    parse_status(raw)
}

#[async_trait]
impl Provider for ShortApi {
    fn base_url(&self) -> Option<&str> {
        Some(self.api.base_url())
    }

    fn capabilities(&self) -> &Capabilities {
        &CAPABILITIES
    }

    fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error> {
        let offering = CAPABILITIES.accept(checked)?;
        let body = body(
            checked.request(),
            offering.wire_model,
            checked.callback_url(),
        )?;
        Ok(PreparedCall::new(
            "POST",
            self.api.url(CREATE),
            body,
            offering.wire_model,
        ))
    }

    async fn submit(&self, checked: &Checked) -> Result<JobHandle, Error> {
        let call = self.prepare(checked)?;
        self.send(&call).await
    }

    async fn status(&self, job: &JobHandle) -> Result<JobStatus, Error> {
        let raw = self.api.get(QUERY, &[("id", &job.id)]).await?;
        parse_status(raw)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn statuses_map_to_states() {
        let cases = [
            (json!({"code": 0, "data": {"status": 0}}), "queued"),
            (json!({"code": 0, "data": {"status": 1}}), "running"),
            (
                json!({"code": 0, "data": {"status": 2, "result": {"videos": [{"url": "https://cdn.example/v.mp4"}]}}}),
                "succeeded",
            ),
            // The image-to-video page shows results under `images`.
            (
                json!({"code": 0, "data": {"status": 2, "result": {"images": [{"url": "https://cdn.example/v.mp4"}]}}}),
                "succeeded",
            ),
            (
                json!({"code": 0, "data": {"status": 3, "refunded": true}}),
                "failed",
            ),
            // An undocumented status is a failure, never a success.
            (json!({"code": 0, "data": {"status": 7}}), "failed"),
        ];
        for (raw, expected) in cases {
            let status = parse_status(raw.clone()).unwrap();
            assert_eq!(status.state.name(), expected, "{raw}");
            assert_eq!(status.raw, raw, "the raw payload is kept");
        }
        let failed =
            parse_status(json!({"code": 0, "data": {"status": 3, "refunded": true}})).unwrap();
        assert_eq!(
            failed.state,
            JobState::Failed {
                reason: "ShortAPI status 3".to_owned(),
                refunded: Some(true)
            }
        );
    }

    #[test]
    fn errors_and_odd_answers_are_errors() {
        let err = parse_status(json!({"code": 404, "message": "job not found"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "shortapi refused the request: job not found"
        );
        for raw in [
            json!({"code": 0}),
            json!({"code": 0, "data": {"status": 2}}),
            json!({"status": "done"}),
            json!([1, 2]),
        ] {
            let err = parse_status(raw.clone()).unwrap_err();
            assert!(matches!(err, Error::Protocol { .. }), "{raw}: {err}");
        }
    }

    #[test]
    fn callbacks_carry_the_query_envelope() {
        let body = br#"{"code":0,"data":{"status":2,"result":{"videos":[{"url":"https://cdn.example/out.mp4"}]}}}"#;
        let status = parse_callback(body).unwrap();
        assert_eq!(
            status.state,
            JobState::Succeeded {
                outputs: vec!["https://cdn.example/out.mp4".to_owned()],
            }
        );
        assert!(matches!(
            parse_callback(b"not json").unwrap_err(),
            Error::Protocol { .. }
        ));
    }
}
