//! Jobs: the handle that finds one again, and its status.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::money::Charge;

/// What identifies a job at its provider. It is all that is needed to ask
/// for its status from any process, so it serializes, and its string form
/// `provider:id` is what the `kling` CLI prints and accepts.
///
/// The id is kept whole: AI/ML API ids carry a `:model` suffix, so only the
/// first `:` separates the provider.
///
/// ```
/// use kling_core::JobHandle;
///
/// let job: JobHandle = "aimlapi:0b1c2d:klingai/video-o1-video-to-video-edit".parse().unwrap();
/// assert_eq!(job.provider, "aimlapi");
/// assert_eq!(job.id, "0b1c2d:klingai/video-o1-video-to-video-edit");
/// assert_eq!(job.to_string(), "aimlapi:0b1c2d:klingai/video-o1-video-to-video-edit");
/// ```
///
/// Where a provider says at create what it charged (ShortAPI), the handle
/// carries it too:
///
/// ```
/// use kling_core::{Charge, JobHandle, Usd};
///
/// let job = JobHandle::new("shortapi", "8f2c1e").with_charge(Usd::from_micros(715_000).into());
/// assert_eq!(job.charge, Some(Charge::Usd(Usd::from_micros(715_000))));
/// let json = serde_json::to_string(&job).unwrap();
/// assert_eq!(json, r#"{"provider":"shortapi","id":"8f2c1e","charge":{"usd":0.715}}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobHandle {
    /// The provider's name (`shortapi`, `aimlapi`, `oxen`).
    pub provider: String,
    /// The provider's job id, as the provider gave it.
    pub id: String,
    /// The provider's model name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// When the job was created, when known.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339")]
    pub created_at: Option<SystemTime>,
    /// What the provider said it charged when it created the job, when it
    /// says then (ShortAPI's `data.amount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<Charge>,
}

impl JobHandle {
    /// A handle for job `id` at `provider`.
    pub fn new(provider: impl Into<String>, id: impl Into<String>) -> Self {
        JobHandle {
            provider: provider.into(),
            id: id.into(),
            model: None,
            created_at: None,
            charge: None,
        }
    }

    /// Records the provider's model name.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Records when the job was created.
    #[must_use]
    pub fn with_created_at(mut self, at: SystemTime) -> Self {
        self.created_at = Some(at);
        self
    }

    /// Records what the provider said it charged at create.
    ///
    /// ```
    /// use kling_core::{Charge, Credits, JobHandle};
    ///
    /// let job = JobHandle::new("example", "1").with_charge(Charge::Credits(Credits::ZERO));
    /// assert_eq!(job.charge.and_then(Charge::credits), Some(Credits::ZERO));
    /// ```
    #[must_use]
    pub fn with_charge(mut self, charge: Charge) -> Self {
        self.charge = Some(charge);
        self
    }
}

impl fmt::Display for JobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.id)
    }
}

/// A string that is not `provider:id`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a job: expected PROVIDER:ID, the provider's name and its job id, as `kling jobs` shows them"
)]
pub struct ParseJobHandleError(String);

impl FromStr for JobHandle {
    type Err = ParseJobHandleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((provider, id))
                if !provider.is_empty()
                    && !id.is_empty()
                    && provider
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Ok(JobHandle::new(provider, id))
            }
            _ => Err(ParseJobHandleError(s.to_owned())),
        }
    }
}

/// `at` as RFC 3339 in UTC, to the second: `2026-11-22T10:00:00Z`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let at = UNIX_EPOCH + Duration::from_secs(86_400);
/// assert_eq!(kling_core::job::rfc3339(at), "1970-01-02T00:00:00Z");
/// ```
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // the signature serde's `with` requires
    pub(super) fn serialize<S: Serializer>(
        at: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.collect_str(&humantime::format_rfc3339_seconds(*at)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|s| humantime::parse_rfc3339_weak(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Where a job is, with the provider's own answer kept for diagnosis.
///
/// ```
/// use kling_core::{Charge, Credits, JobState, JobStatus};
/// use serde_json::json;
///
/// let raw = json!({"status": "generating", "meta": {"usage": {"credits_used": 40}}});
/// let status = JobStatus::new(JobState::Running, raw)
///     .with_charge(Charge::Credits(Credits::from_millionths(40_000_000)));
/// assert_eq!(status.charge.map(|c| c.to_string()).as_deref(), Some("40 credits"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobStatus {
    /// The state, in provider-neutral terms.
    pub state: JobState,
    /// What the provider says the job has been charged, when this answer
    /// says it (AI/ML API's `meta.usage.credits_used`). Providers that
    /// report a charge elsewhere leave it empty; see
    /// [`Provider::charge`](crate::provider::Provider::charge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<Charge>,
    /// The provider's status payload as received.
    pub raw: serde_json::Value,
}

impl JobStatus {
    /// A status in `state`, keeping the provider's `raw` payload.
    ///
    /// ```
    /// use kling_core::{JobState, JobStatus};
    ///
    /// let status = JobStatus::new(JobState::Queued, serde_json::json!({"status": 0}));
    /// assert_eq!(status.charge, None);
    /// ```
    pub fn new(state: JobState, raw: serde_json::Value) -> Self {
        JobStatus {
            state,
            charge: None,
            raw,
        }
    }

    /// Records what the provider says the job has been charged.
    ///
    /// ```
    /// use kling_core::{Charge, JobState, JobStatus, Usd};
    ///
    /// let status = JobStatus::new(JobState::Cancelled, serde_json::Value::Null)
    ///     .with_charge(Charge::Usd(Usd::ZERO));
    /// assert_eq!(status.charge, Some(Charge::Usd(Usd::ZERO)));
    /// ```
    #[must_use]
    pub fn with_charge(mut self, charge: Charge) -> Self {
        self.charge = Some(charge);
        self
    }
}

/// The state of a job.
///
/// Adapters map every status word their provider documents; a word they do
/// not know is an error, never a success.
///
/// ```
/// use kling_core::JobState;
///
/// assert!(!JobState::Running.is_terminal());
/// assert!(JobState::Cancelled.is_terminal());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Accepted, waiting to run.
    Queued,
    /// Generating.
    Running,
    /// Done.
    Succeeded {
        /// URLs of the results; they may expire.
        outputs: Vec<String>,
    },
    /// Ended without a result.
    Failed {
        /// The provider's reason.
        reason: String,
        /// Whether the provider says it refunded the job, when it says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refunded: Option<bool>,
    },
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// Whether the job has ended (succeeded, failed or cancelled).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Succeeded { .. } | JobState::Failed { .. } | JobState::Cancelled
        )
    }

    /// A short name for the state: `queued`, `running`, `succeeded`,
    /// `failed`, `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded { .. } => "succeeded",
            JobState::Failed { .. } => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::money::{Credits, Usd};

    #[test]
    fn handle_strings() {
        for bad in [
            "",
            "shortapi",
            "shortapi:",
            ":abc",
            "short api:abc",
            "a/b:c",
        ] {
            assert!(bad.parse::<JobHandle>().is_err(), "{bad}");
        }
        let job: JobHandle = "oxen:gen-1".parse().unwrap();
        assert_eq!(job, JobHandle::new("oxen", "gen-1"));
    }

    #[test]
    fn handle_serde_round_trip() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let job = JobHandle::new("shortapi", "j1")
            .with_model("kwaivgi/kling-o1/video-to-video")
            .with_created_at(at);
        let json = serde_json::to_string(&job).unwrap();
        assert_eq!(
            json,
            r#"{"provider":"shortapi","id":"j1","model":"kwaivgi/kling-o1/video-to-video","created_at":"2026-11-18T11:06:40Z"}"#
        );
        assert_eq!(serde_json::from_str::<JobHandle>(&json).unwrap(), job);
        let bare: JobHandle = serde_json::from_str(r#"{"provider":"oxen","id":"g"}"#).unwrap();
        assert_eq!(bare, JobHandle::new("oxen", "g"));
    }

    #[test]
    fn handle_serde_round_trip_with_a_charge() {
        for charge in [
            Charge::Usd("0.715".parse().unwrap()),
            Charge::Credits("123456.000001".parse().unwrap()),
        ] {
            let job = JobHandle::new("shortapi", "j1")
                .with_model("kwaivgi/kling-o1/video-to-video")
                .with_charge(charge);
            let json = serde_json::to_value(&job).unwrap();
            let back: JobHandle = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(back, job, "{json}");
            assert_eq!(back.charge, Some(charge));
        }
        // A handle stored before charges were recorded still reads.
        let old: JobHandle =
            serde_json::from_str(r#"{"provider":"oxen","id":"g","model":"m"}"#).unwrap();
        assert_eq!(old.charge, None);
        assert!(!serde_json::to_string(&old).unwrap().contains("charge"));
    }

    #[test]
    fn status_serde_round_trip() {
        let status = JobStatus::new(
            JobState::Succeeded {
                outputs: vec!["https://cdn.example/out.mp4".into()],
            },
            serde_json::json!({"status": 2}),
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["state"]["state"], "succeeded");
        assert!(json.get("charge").is_none());
        let back: JobStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn status_serde_round_trip_with_a_charge() {
        for (state, charge) in [
            (
                JobState::Succeeded {
                    outputs: vec!["https://cdn.example/out.mp4".into()],
                },
                Charge::Usd(Usd::from_micros(715_000)),
            ),
            (
                JobState::Running,
                Charge::Credits(Credits::from_millionths(1)),
            ),
            (
                JobState::Failed {
                    reason: "nsfw".into(),
                    refunded: Some(false),
                },
                Charge::Credits(Credits::MAX),
            ),
        ] {
            let status =
                JobStatus::new(state, serde_json::json!({"any": "payload"})).with_charge(charge);
            let json = serde_json::to_value(&status).unwrap();
            let back: JobStatus = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(back, status, "{json}");
        }
        let json = serde_json::to_value(
            JobStatus::new(JobState::Queued, serde_json::Value::Null)
                .with_charge(Charge::Credits(Credits::from_millionths(12_500_000))),
        )
        .unwrap();
        assert_eq!(json["charge"], serde_json::json!({"credits": "12.5"}));
    }
}
