//! Faults the sandbox can inject, and their command-line spelling.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::Provider;

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// `429 Too Many Requests` with `Retry-After: 1`, in the provider's
    /// error shape.
    RateLimit,
    /// A 5xx answer (500, 502 or 503) in the provider's error shape.
    ServerError(u16),
    /// The connection is closed after the request was read, with no answer.
    Drop,
    /// The answer comes after a delay.
    Slow(Duration),
    /// The job is accepted and then ends failed.
    FailJob,
    /// The first result URL a job gets answers 403 (404 on Oxen) until the
    /// job's status is asked again, which hands out a fresh URL.
    ExpireUrl,
    /// A download's body comes 1 KiB every 100 ms, as over a bad link.
    /// Acts on downloads only.
    Trickle,
    /// A download answers with its headers (the whole length announced)
    /// and the first 64 bytes of the body, then sends nothing more, holding
    /// the connection open for 120 s before closing it: a result host that
    /// hangs (for a while: no client can wait on it forever). Acts on
    /// downloads only.
    Stall,
    /// A download answers `200 OK` with a small `text/html` error page in
    /// place of the video, as a CDN or a proxy may; a status query answers
    /// the same page in place of its JSON, as a proxy in front of the API
    /// may. Acts on downloads and status queries only.
    Html,
}

/// How long a [`FaultKind::Stall`] holds a connection open without
/// sending, at most, so that no client can wait on it forever.
pub(crate) const STALL_HOLD: Duration = Duration::from_secs(120);

impl FaultKind {
    /// Whether this fault is decided when a job is created (and acts on the
    /// job later) rather than on the request it hits.
    pub(crate) fn is_job_fault(self) -> bool {
        matches!(self, FaultKind::FailJob | FaultKind::ExpireUrl)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::RateLimit => f.write_str("429"),
            FaultKind::ServerError(code) => write!(f, "{code}"),
            FaultKind::Drop => f.write_str("drop"),
            FaultKind::Slow(delay) => write!(f, "slow={}ms", delay.as_millis()),
            FaultKind::FailJob => f.write_str("fail"),
            FaultKind::ExpireUrl => f.write_str("expire"),
            FaultKind::Trickle => f.write_str("trickle"),
            FaultKind::Stall => f.write_str("stall"),
            FaultKind::Html => f.write_str("html"),
        }
    }
}

/// Which requests a fault may hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Creating a job.
    Create,
    /// Asking for a job's status.
    Status,
    /// Cancelling a job.
    Cancel,
    /// Downloading a result.
    Download,
    /// Opening Oxen's event stream.
    Events,
    /// Looking up past jobs (Oxen's generation list and records).
    Lookup,
    /// Starting an upload to a provider's own storage.
    Upload,
}

impl Operation {
    const ALL: [(&'static str, Operation); 7] = [
        ("create", Operation::Create),
        ("status", Operation::Status),
        ("cancel", Operation::Cancel),
        ("download", Operation::Download),
        ("events", Operation::Events),
        ("lookup", Operation::Lookup),
        ("upload", Operation::Upload),
    ];
}

/// A fault: what goes wrong, how often, and where.
///
/// ```
/// use kling_sandbox::{Fault, FaultKind, Operation, Provider};
///
/// let fault: Fault = "429:0.5*3@shortapi/status".parse().unwrap();
/// assert_eq!(
///     fault,
///     Fault::new(FaultKind::RateLimit)
///         .probability(0.5)
///         .times(3)
///         .provider(Provider::ShortApi)
///         .on(Operation::Status)
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    pub(crate) kind: FaultKind,
    pub(crate) probability: f64,
    pub(crate) times: Option<u32>,
    pub(crate) provider: Option<Provider>,
    pub(crate) operation: Option<Operation>,
}

impl Fault {
    /// A fault that hits every request it applies to, on every provider.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            probability: 1.0,
            times: None,
            provider: None,
            operation: None,
        }
    }

    /// Hits with this probability (0 to 1), drawn from the sandbox's seeded
    /// generator.
    #[must_use]
    pub fn probability(mut self, probability: f64) -> Self {
        self.probability = probability.clamp(0.0, 1.0);
        self
    }

    /// Hits at most this many times.
    #[must_use]
    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    /// Hits only this provider.
    #[must_use]
    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Hits only this operation.
    #[must_use]
    pub fn on(mut self, operation: Operation) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Whether this fault applies to `operation` on `provider` (before the
    /// dice are thrown).
    pub(crate) fn applies(&self, provider: Provider, operation: Operation) -> bool {
        let operation_matches = match self.operation {
            Some(only) => only == operation,
            // Job faults act on jobs, so they are decided at create.
            None if self.kind.is_job_fault() => operation == Operation::Create,
            None => true,
        };
        operation_matches && self.provider.is_none_or(|p| p == provider)
    }
}

/// A `--fault` spec that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad fault {spec:?}: {reason}; expected KIND[:PROBABILITY][*TIMES][@PROVIDER][/OPERATION], \
         KIND one of 429, 500, 502, 503, drop, slow[=MS], fail, expire, trickle, stall, html"
)]
pub struct ParseFaultError {
    spec: String,
    reason: String,
}

/// The longest `slow=MS` delay: ten minutes, longer than any client waits.
const MAX_SLOW_MS: u64 = 600_000;

impl FromStr for Fault {
    type Err = ParseFaultError;

    /// Reads `KIND[:PROBABILITY][*TIMES][@PROVIDER][/OPERATION]`:
    /// `429`, `drop:0.1`, `503*2@aimlapi/status`, `slow=3000`, `fail@oxen`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseFaultError {
            spec: spec.to_owned(),
            reason,
        };
        let (rest, operation) = match spec.split_once('/') {
            Some((rest, op)) => {
                let operation = Operation::ALL
                    .iter()
                    .find(|(name, _)| *name == op)
                    .map(|(_, o)| *o)
                    .ok_or_else(|| {
                        err(format!(
                            "unknown operation {op:?} (create, status, cancel, download, events, lookup, upload)"
                        ))
                    })?;
                (rest, Some(operation))
            }
            None => (spec, None),
        };
        let (rest, provider) = match rest.split_once('@') {
            Some((rest, p)) => (
                rest,
                Some(p.parse::<Provider>().map_err(|e| err(e.to_string()))?),
            ),
            None => (rest, None),
        };
        let (rest, times) = match rest.split_once('*') {
            Some((rest, n)) => (
                rest,
                Some(n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    err(format!(
                        "times {n:?} is not a whole number from 1 to {}",
                        u32::MAX
                    ))
                })?),
            ),
            None => (rest, None),
        };
        let (kind, probability) = match rest.split_once(':') {
            Some((kind, p)) => {
                let p: f64 = p
                    .parse()
                    .ok()
                    .filter(|p: &f64| (0.0..=1.0).contains(p))
                    .ok_or_else(|| err(format!("probability {p:?} is not a number from 0 to 1")))?;
                (kind, p)
            }
            None => (rest, 1.0),
        };
        let kind = match kind {
            "429" => FaultKind::RateLimit,
            "500" | "502" | "503" => FaultKind::ServerError(kind.parse().unwrap_or(500)),
            "drop" => FaultKind::Drop,
            "slow" => FaultKind::Slow(Duration::from_secs(2)),
            "fail" => FaultKind::FailJob,
            "expire" => FaultKind::ExpireUrl,
            "trickle" => FaultKind::Trickle,
            "stall" => FaultKind::Stall,
            "html" => FaultKind::Html,
            other => match other.strip_prefix("slow=") {
                Some(ms) => FaultKind::Slow(Duration::from_millis(
                    ms.parse()
                        .ok()
                        .filter(|ms| *ms <= MAX_SLOW_MS)
                        .ok_or_else(|| {
                            err(format!(
                                "delay {ms:?} is not a number of milliseconds from 0 to \
                                 {MAX_SLOW_MS}"
                            ))
                        })?,
                )),
                None => return Err(err(format!("unknown kind {other:?}"))),
            },
        };
        Ok(Fault {
            kind,
            probability,
            times,
            provider,
            operation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part() {
        let fault: Fault = "503:0.25*2@oxen/download".parse().unwrap();
        assert_eq!(fault.kind, FaultKind::ServerError(503));
        assert!((fault.probability - 0.25).abs() < f64::EPSILON);
        assert_eq!(fault.times, Some(2));
        assert_eq!(fault.provider, Some(Provider::Oxen));
        assert_eq!(fault.operation, Some(Operation::Download));
        assert_eq!(
            "slow=250".parse::<Fault>().unwrap().kind,
            FaultKind::Slow(Duration::from_millis(250))
        );
        assert_eq!(
            "trickle/download".parse::<Fault>().unwrap().kind,
            FaultKind::Trickle
        );
        assert_eq!(
            "stall/download".parse::<Fault>().unwrap(),
            Fault::new(FaultKind::Stall).on(Operation::Download)
        );
        assert_eq!(
            "html*1".parse::<Fault>().unwrap(),
            Fault::new(FaultKind::Html).times(1)
        );
        for kind in [FaultKind::Trickle, FaultKind::Stall, FaultKind::Html] {
            assert_eq!(kind.to_string().parse::<Fault>().unwrap().kind, kind);
        }
        assert_eq!(
            "expire".parse::<Fault>().unwrap(),
            Fault::new(FaultKind::ExpireUrl)
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, reason) in [
            ("418", "unknown kind \"418\""),
            ("429:2", "probability \"2\" is not a number from 0 to 1"),
            (
                "429*x",
                "times \"x\" is not a whole number from 1 to 4294967295",
            ),
            (
                "429*0",
                "times \"0\" is not a whole number from 1 to 4294967295",
            ),
            (
                "429*-1",
                "times \"-1\" is not a whole number from 1 to 4294967295",
            ),
            ("429:NaN", "probability \"NaN\" is not a number from 0 to 1"),
            ("429:inf", "probability \"inf\" is not a number from 0 to 1"),
            (
                "429:-0.5",
                "probability \"-0.5\" is not a number from 0 to 1",
            ),
            (
                "slow=600001",
                "delay \"600001\" is not a number of milliseconds from 0 to 600000",
            ),
            (
                "slow=-1",
                "delay \"-1\" is not a number of milliseconds from 0 to 600000",
            ),
            ("429@nowhere", "unknown provider \"nowhere\""),
            ("429/uploads", "unknown operation \"uploads\""),
            (
                "slow=soon",
                "delay \"soon\" is not a number of milliseconds from 0 to 600000",
            ),
        ] {
            let err = spec.parse::<Fault>().unwrap_err().to_string();
            assert!(err.contains(reason), "{spec}: {err}");
        }
    }

    #[test]
    fn job_faults_apply_at_create_unless_told_otherwise() {
        let fail = Fault::new(FaultKind::FailJob);
        assert!(fail.applies(Provider::ShortApi, Operation::Create));
        assert!(!fail.applies(Provider::ShortApi, Operation::Status));
        let rate = Fault::new(FaultKind::RateLimit).provider(Provider::Oxen);
        assert!(rate.applies(Provider::Oxen, Operation::Download));
        assert!(!rate.applies(Provider::AimlApi, Operation::Status));
    }
}
