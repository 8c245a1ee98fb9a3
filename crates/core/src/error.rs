//! The error type shared by every crate of kling-rs.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::job::JobHandle;
use crate::request::{Model, Task};
use crate::rules::{Violation, Violations};

/// A boxed error from a lower layer (HTTP client, I/O).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Whether a request that failed in transit may have reached the provider.
///
/// This matters for creates: a create that may have been sent may have
/// started a paid job, so it is never retried automatically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// The request did not leave this process (connect failed, DNS, TLS
    /// handshake): retrying cannot make a second job.
    NotSent,
    /// The request may have reached the provider (timeout or connection
    /// dropped after the body was written, a 5xx answer to a create): a
    /// job may exist.
    MaybeSent,
}

/// Everything that can go wrong, from a broken rule to a dropped connection.
///
/// The variants say what happened; the predicates
/// ([`is_invalid_request`](Error::is_invalid_request),
/// [`may_have_been_sent`](Error::may_have_been_sent), …) answer the
/// questions callers ask. An answer from the provider
/// ([`Auth`](Error::Auth), [`RateLimited`](Error::RateLimited),
/// [`Rejected`](Error::Rejected)) means the request was received and
/// refused, so no job exists.
///
/// ```
/// use kling_core::{Error, Media, Request, ReferRequest};
///
/// let err = Request::from(
///     ReferRequest::new(Media::url("https://example.com/in.mp4"), "Fly over @Video1").duration(12),
/// )
/// .validate()
/// .unwrap_err();
///
/// assert!(err.is_invalid_request());
/// assert!(!err.may_have_been_sent());
/// assert_eq!(err.violations()[0].rule(), "duration_range");
/// assert_eq!(
///     err.to_string(),
///     "invalid request, nothing was sent: duration: 12 s, allowed 3 to 10 s in whole seconds"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request broke one or more local rules; nothing was sent.
    #[error("invalid request, nothing was sent: {0}")]
    InvalidRequest(Violations),

    /// The provider or model does not offer the task, a field or an
    /// operation; nothing was sent.
    #[error("{provider} does not offer {feature}{}; nothing was sent", on_what(*.task, *.model))]
    Unsupported {
        /// The provider.
        provider: String,
        /// The task asked for, when the refusal concerns one.
        task: Option<Task>,
        /// The model asked for, when the refusal concerns one.
        model: Option<Model>,
        /// What is not offered: a field (`keep_audio`), a task, an operation.
        feature: String,
    },

    /// The provider refused the API key.
    #[error("{provider} refused the API key (HTTP {status}): {message}")]
    Auth {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },

    /// The provider asked us to slow down.
    #[error("{provider} is rate limiting requests{}: {message}", retry_hint(*.retry_after))]
    RateLimited {
        /// The provider.
        provider: String,
        /// How long the provider asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// Whether the limit is on jobs running at once (a concurrency
        /// limit, Kling's code 1303) rather than on requests: fewer jobs
        /// at a time get through, where waiting alone does not.
        concurrency: bool,
        /// The provider's message.
        message: String,
    },

    /// The provider answered with an error: no job was created by this
    /// request.
    #[error("{provider} refused the request{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Rejected {
        /// The provider.
        provider: String,
        /// The HTTP status, when the refusal came as one (ShortAPI refuses
        /// with HTTP 200 and a non-zero `code`).
        status: Option<u16>,
        /// The provider's message.
        message: String,
        /// The whole response body, for diagnosis.
        body: String,
    },

    /// The job ran and failed.
    #[error("job {job} failed: {reason}{}", refund_note(*.refunded))]
    JobFailed {
        /// The job (boxed, as everywhere in this type: a job handle is large
        /// and errors travel in every `Result`).
        job: Box<JobHandle>,
        /// The provider's reason.
        reason: String,
        /// Whether the provider says it refunded the job, when it says.
        refunded: Option<bool>,
    },

    /// The job was cancelled before it finished.
    #[error("job {job} was cancelled")]
    JobCancelled {
        /// The job (boxed, as everywhere in this type).
        job: Box<JobHandle>,
    },

    /// The deadline passed.
    #[error("timed out after {}{}", humantime::format_duration(*.after), timeout_note(.job.as_deref(), *.delivery))]
    Timeout {
        /// The job, when one was created; it may still finish (boxed, as
        /// everywhere in this type).
        job: Option<Box<JobHandle>>,
        /// How long was waited.
        after: Duration,
        /// Whether the request that timed out may have reached the provider.
        delivery: Delivery,
    },

    /// The connection failed.
    #[error("{provider}: {}{}", transport_note(*.delivery), attempt.as_ref().map(|a| format!(" ({a})")).unwrap_or_default())]
    Transport {
        /// The provider.
        provider: String,
        /// Whether the request may have reached the provider.
        delivery: Delivery,
        /// What identifies the attempt, so a job it may have created can be
        /// found (for a create: the time, URL and request fingerprint).
        attempt: Option<String>,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The API key cannot be used as it is: it holds a character no HTTP
    /// header can carry (a line break, another control character).
    /// Nothing was sent. The message names the problem,
    /// never the key.
    #[error("the API key for {provider} cannot be sent: {problem}; nothing was sent")]
    InvalidKey {
        /// The provider.
        provider: String,
        /// What is wrong with it.
        problem: String,
    },

    /// A request that is safe to repeat (a status, a cancel, a lookup) kept
    /// failing on the provider's side (5xx answers, answers that are not
    /// readable) until its retries were spent. It created nothing; a later
    /// try may succeed.
    #[error("{provider} kept failing on {request} ({tries} tries): {message}")]
    Unavailable {
        /// The provider.
        provider: String,
        /// The request: `GET /path`.
        request: String,
        /// How many tries were made.
        tries: u32,
        /// What the last try got.
        message: String,
    },

    /// A local file could not be read or written (a full disk, a folder
    /// that cannot be written, a failed rename): the provider is not
    /// concerned, and nothing was sent because of it.
    #[error("{what}: {error}")]
    Local {
        /// The job whose result was being written, when there is one (it
        /// is done at the provider; its result can be fetched again).
        job: Option<Box<JobHandle>>,
        /// What was being done: `cannot write the result of shortapi:abc`.
        what: String,
        /// The I/O error.
        #[source]
        error: BoxError,
    },

    /// The provider answered with something we cannot interpret (an
    /// unknown status, a body that is not the documented shape).
    #[error("unexpected answer from {provider}: {message}")]
    Protocol {
        /// The provider.
        provider: String,
        /// What was wrong with it.
        message: String,
        /// The body received, for diagnosis.
        body: String,
    },
}

fn on_what(task: Option<Task>, model: Option<Model>) -> String {
    match (task, model) {
        (Some(task), Some(model)) => format!(" for {task} on {model}"),
        (Some(task), None) => format!(" for {task}"),
        (None, Some(model)) => format!(" on {model}"),
        (None, None) => String::new(),
    }
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {})", humantime::format_duration(d)))
        .unwrap_or_default()
}

fn refund_note(refunded: Option<bool>) -> &'static str {
    match refunded {
        Some(true) => " (refunded)",
        Some(false) => " (not refunded)",
        None => "",
    }
}

fn timeout_note(job: Option<&JobHandle>, delivery: Delivery) -> String {
    match (job, delivery) {
        (Some(job), _) => format!("; job {job} may still finish"),
        (None, Delivery::MaybeSent) => {
            "; the request may have reached the provider and a job may exist".to_owned()
        }
        (None, Delivery::NotSent) => "; nothing was sent".to_owned(),
    }
}

fn transport_note(delivery: Delivery) -> &'static str {
    match delivery {
        Delivery::NotSent => "connection failed before the request was sent",
        Delivery::MaybeSent => {
            "connection failed after the request may have reached the provider; a job may exist"
        }
    }
}

impl Error {
    /// `provider` does not offer `feature` (a field, a task, an operation);
    /// nothing was sent.
    ///
    /// ```
    /// use kling_core::Error;
    ///
    /// let err = Error::unsupported("example", "cancelling jobs");
    /// assert!(err.is_unsupported());
    /// assert_eq!(err.to_string(), "example does not offer cancelling jobs; nothing was sent");
    /// ```
    pub fn unsupported(provider: &str, feature: impl Into<String>) -> Self {
        Error::Unsupported {
            provider: provider.to_owned(),
            task: None,
            model: None,
            feature: feature.into(),
        }
    }

    /// `provider` refused the request with `message` (and an HTTP
    /// `status`, when it came as one); `body` is kept for diagnosis. No job
    /// exists.
    ///
    /// ```
    /// use kling_core::Error;
    ///
    /// let err = Error::rejected("example", None, "insufficient balance", r#"{"code":402}"#);
    /// assert!(!err.may_have_been_sent());
    /// assert_eq!(err.to_string(), "example refused the request: insufficient balance");
    /// ```
    pub fn rejected(
        provider: &str,
        status: Option<u16>,
        message: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Error::Rejected {
            provider: provider.to_owned(),
            status,
            message: message.into(),
            body: body.into(),
        }
    }

    /// `provider` answered something that is not its documented shape:
    /// what was wrong (`message`) and the `body` received.
    ///
    /// ```
    /// use kling_core::Error;
    ///
    /// let err = Error::protocol("example", "no job id", "{}");
    /// assert_eq!(err.to_string(), "unexpected answer from example: no job id");
    /// ```
    pub fn protocol(provider: &str, message: impl Into<String>, body: impl Into<String>) -> Self {
        Error::Protocol {
            provider: provider.to_owned(),
            message: message.into(),
            body: body.into(),
        }
    }

    /// The error for `job` ending in `state`: [`Error::JobFailed`] with the
    /// provider's reason, [`Error::JobCancelled`]; `None` for a job that
    /// succeeded or has not ended.
    ///
    /// ```
    /// use kling_core::{Error, JobHandle, JobState};
    ///
    /// let job = JobHandle::new("example", "7");
    /// let failed = JobState::Failed { reason: "content policy".into(), refunded: Some(true) };
    /// let err = Error::job_ended(&job, &failed).unwrap();
    /// assert_eq!(err.to_string(), "job example:7 failed: content policy (refunded)");
    /// assert!(Error::job_ended(&job, &JobState::Running).is_none());
    /// ```
    pub fn job_ended(job: &JobHandle, state: &crate::job::JobState) -> Option<Self> {
        use crate::job::JobState;
        match state {
            JobState::Failed { reason, refunded } => Some(Error::JobFailed {
                job: Box::new(job.clone()),
                reason: reason.clone(),
                refunded: *refunded,
            }),
            JobState::Cancelled => Some(Error::JobCancelled {
                job: Box::new(job.clone()),
            }),
            _ => None,
        }
    }

    /// The request broke a local rule and nothing was sent.
    pub fn is_invalid_request(&self) -> bool {
        matches!(self, Error::InvalidRequest(_))
    }

    /// The provider does not offer what was asked; nothing was sent.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported { .. })
    }

    /// The API key was refused.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. })
    }

    /// The provider is rate limiting.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Error::RateLimited { .. })
    }

    /// The deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether trying the same idempotent request again later may succeed:
    /// a transport failure, a timeout, a provider that kept failing
    /// ([`Error::Unavailable`]), a rate limit or an answer that could not
    /// be read ([`Error::Protocol`]). False for refusals, broken rules,
    /// failed jobs and local errors.
    ///
    /// ```
    /// use kling_core::Error;
    ///
    /// let err = Error::Unavailable {
    ///     provider: "shortapi".into(),
    ///     request: "GET /status".into(),
    ///     tries: 6,
    ///     message: "HTTP 500".into(),
    /// };
    /// assert!(err.is_transient());
    /// assert!(!err.may_have_been_sent());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Transport { .. }
                | Error::Timeout { .. }
                | Error::Unavailable { .. }
                | Error::RateLimited { .. }
                | Error::Protocol { .. }
        )
    }

    /// A local file could not be read or written.
    pub fn is_local(&self) -> bool {
        matches!(self, Error::Local { .. })
    }

    /// How long the provider asked to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the failed request may have reached the provider, so that a
    /// create may have started a job. Never true for errors raised before
    /// sending, nor for the provider's own refusals.
    ///
    /// ```
    /// use kling_core::{Delivery, Error};
    ///
    /// let err = Error::Transport {
    ///     provider: "shortapi".into(),
    ///     delivery: Delivery::MaybeSent,
    ///     attempt: Some("create at 2026-11-22T10:00:00Z".into()),
    ///     source: "connection reset".into(),
    /// };
    /// assert!(err.may_have_been_sent());
    /// ```
    pub fn may_have_been_sent(&self) -> bool {
        matches!(
            self,
            Error::Transport {
                delivery: Delivery::MaybeSent,
                ..
            } | Error::Timeout {
                delivery: Delivery::MaybeSent,
                ..
            }
        )
    }

    /// The job this error concerns, when one exists.
    pub fn job(&self) -> Option<&JobHandle> {
        match self {
            Error::JobFailed { job, .. } | Error::JobCancelled { job } => Some(job),
            Error::Timeout { job, .. } | Error::Local { job, .. } => job.as_deref(),
            _ => None,
        }
    }

    /// The broken rules, for [`Error::InvalidRequest`]; empty otherwise.
    pub fn violations(&self) -> &[Violation] {
        match self {
            Error::InvalidRequest(violations) => violations,
            _ => &[],
        }
    }
}

impl From<Violation> for Error {
    fn from(violation: Violation) -> Self {
        Error::InvalidRequest(Violations::from(vec![violation]))
    }
}

// Checked at compile time: the error can cross threads and tasks.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Error>();
};

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::NotSent => "not sent",
            Delivery::MaybeSent => "may have been sent",
        })
    }
}
