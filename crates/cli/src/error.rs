//! The one error every command returns: what decides the exit code, what
//! is said on stderr, and what goes into the `--json` error document.
//! `main` reports it, in one place ([`Failure::report`]).

use std::io::Write as _;

use serde_json::{Value, json};

use crate::Exit;
use crate::output::Output;
use crate::text::escaped;

/// Why a command did not succeed (boxed: it travels in every `Result`).
#[derive(Debug)]
pub(crate) struct Failure(Box<Parts>);

/// What a [`Failure`] holds.
#[derive(Debug)]
pub(crate) struct Parts {
    /// The exit code, as the CLI contract says.
    pub(crate) exit: Exit,
    /// The error document's `kind`: `rejected`, `usage`, `transport`, …
    kind: &'static str,
    /// The one-line message (it may carry a provider's text; it is
    /// escaped when printed).
    message: String,
    /// The chain of causes, for stderr.
    causes: Vec<String>,
    /// Lines that detail the message on stderr (a batch's bad lines).
    details: Vec<String>,
    /// The broken rules: `{"rule", "message"}` (and `line` for a batch).
    violations: Vec<Value>,
    /// A job may exist at the provider whose id is not known.
    may_exist: bool,
    /// The job concerned, when one exists.
    job: Option<String>,
    /// What to do next.
    hints: Vec<String>,
    /// The command already printed its own account (a batch's summary,
    /// validate's lines): only the exit code is left.
    reported: bool,
}

impl Failure {
    /// A failure with this exit code, kind and message.
    pub(crate) fn new(exit: Exit, kind: &'static str, message: impl Into<String>) -> Self {
        Failure(Box::new(Parts {
            exit,
            kind,
            message: message.into(),
            causes: Vec::new(),
            details: Vec::new(),
            violations: Vec::new(),
            may_exist: false,
            job: None,
            hints: Vec::new(),
            reported: false,
        }))
    }

    /// A usage error: a flag, a key, the ledger or an output path.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure::new(Exit::Usage, "usage", message)
    }

    /// A failure the command has already shown (its summary document or
    /// lines): only its exit code is left to give.
    pub(crate) fn reported(exit: Exit) -> Self {
        let mut failure = Failure::new(exit, "reported", "");
        failure.reported = true;
        failure
    }

    /// The same failure with another exit code.
    #[must_use]
    pub(crate) fn with_exit(mut self, exit: Exit) -> Self {
        self.exit = exit;
        self
    }

    /// Names `job` as the job concerned, unless one is named already.
    #[must_use]
    pub(crate) fn with_job(mut self, job: &kling::JobHandle) -> Self {
        if self.job.is_none() && !self.reported {
            self.job = Some(job.to_string());
        }
        self
    }

    /// Adds a hint: what to do about it.
    #[must_use]
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Adds a line of detail for stderr.
    #[must_use]
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }

    /// Adds a broken rule to the error document.
    #[must_use]
    pub(crate) fn violation(mut self, violation: Value) -> Self {
        self.violations.push(violation);
        self
    }

    /// The message, as it was made (unescaped).
    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The `--json` error document.
    pub(crate) fn document(&self) -> Value {
        json!({ "error": {
            "kind": self.kind,
            "message": self.message,
            "violations": (!self.violations.is_empty()).then_some(&self.violations),
            "may_exist": self.may_exist,
            "job": self.job,
        }})
    }

    /// Says it: on stderr with its causes and hints, control characters
    /// escaped; with `--json`, also as one document on stdout. Returns the
    /// exit code.
    pub(crate) fn report(&self, output: Output) -> Exit {
        if self.reported {
            return self.exit;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {}", escaped(&self.message));
        for detail in &self.details {
            let _ = writeln!(err, "  {}", escaped(detail));
        }
        for cause in &self.causes {
            let _ = writeln!(err, "  caused by: {}", escaped(cause));
        }
        for hint in &self.hints {
            let _ = writeln!(err, "hint: {}", escaped(hint));
        }
        drop(err);
        if output.is_json() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", self.document());
        }
        self.exit
    }
}

/// The exit code for an error of the providers, the transport or the rules.
pub(crate) fn exit_for(error: &kling::Error) -> Exit {
    use kling::Error as E;
    match error {
        E::InvalidRequest(_) | E::Unsupported { .. } => Exit::Rejected,
        // An unusable key, or a file of ours that cannot be read or
        // written: fix it and run again.
        E::Auth { .. } | E::InvalidKey { .. } | E::Local { .. } => Exit::Usage,
        // The provider's deliberate answer, or the job's end.
        E::Rejected { .. }
        | E::RateLimited { .. }
        | E::JobFailed { .. }
        | E::JobCancelled { .. } => Exit::Refused,
        // A connection, a timeout, a provider that kept failing or answered
        // what cannot be read: trying again later may work.
        _ => Exit::Transport,
    }
}

fn kind_of(error: &kling::Error) -> &'static str {
    use kling::Error as E;
    match error {
        E::InvalidRequest(_) | E::Unsupported { .. } => "rejected",
        E::InvalidKey { .. } => "usage",
        E::Local { .. } => "local",
        E::Timeout { .. } => "timeout",
        _ if exit_for(error) == Exit::Transport => "transport",
        _ => "provider",
    }
}

/// The causes of `error`, each once: a cause whose text the message
/// already says is left out.
fn causes(error: &dyn std::error::Error) -> Vec<String> {
    let message = error.to_string();
    let mut list = Vec::new();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            list.push(text);
        }
        cause = inner.source();
    }
    list
}

impl std::ops::Deref for Failure {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl std::ops::DerefMut for Failure {
    fn deref_mut(&mut self) -> &mut Parts {
        &mut self.0
    }
}

impl From<&kling::Error> for Failure {
    fn from(error: &kling::Error) -> Self {
        let job = error.job().map(ToString::to_string);
        let mut failure = Failure::new(exit_for(error), kind_of(error), error.to_string());
        failure.causes = causes(error);
        failure.violations = error
            .violations()
            .iter()
            .map(|v| json!({ "rule": v.rule(), "message": v.to_string() }))
            .collect();
        failure.may_exist = error.may_have_been_sent() && job.is_none();
        if failure.may_exist {
            failure = failure.hint(
                "the job may exist at the provider; it is in the ledger (`kling jobs`), and \
                 `kling resume` looks for it where the provider allows it; it is never sent again",
            );
        }
        let ended = matches!(
            error,
            kling::Error::JobFailed { .. } | kling::Error::JobCancelled { .. }
        );
        if let Some(job) = &job
            && !ended
        {
            failure = failure.hint(if error.is_local() {
                format!(
                    "the job is done at the provider; once the file can be written, `kling wait \
                     {job}` (or `--out OTHER.mp4`) or `kling resume` downloads its result"
                )
            } else {
                format!(
                    "the job goes on at the provider: `kling wait {job}` follows it and downloads \
                     its result, or `kling resume` finishes every unfinished job"
                )
            });
        }
        failure.job = job;
        failure
    }
}

impl From<kling::Error> for Failure {
    fn from(error: kling::Error) -> Self {
        Failure::from(&error)
    }
}

impl From<&kling_ledger::Error> for Failure {
    fn from(error: &kling_ledger::Error) -> Self {
        use kling_ledger::Error as E;
        let (exit, kind) = match error {
            E::Kling(e) => return Failure::from(e),
            E::Budget { .. } => (Exit::Rejected, "budget"),
            E::Refused { .. } => (Exit::Refused, "refused"),
            E::MayExist { .. } => (Exit::Transport, "may_exist"),
            E::Unrecorded { .. } => (Exit::Transport, "unrecorded"),
            E::Busy { .. } => (Exit::Transport, "busy"),
            E::Store(_) => (Exit::Usage, "ledger"),
            E::Output { .. } => (Exit::Usage, "output"),
            E::Conflict(_) => (Exit::Usage, "conflict"),
            _ => (Exit::Usage, "other"),
        };
        let mut failure = Failure::new(exit, kind, error.to_string());
        failure.causes = causes(error);
        failure.may_exist = error.may_exist();
        failure.job = error.job().map(ToString::to_string);
        if let E::MayExist { .. } = error {
            failure = failure.hint(
                "`kling jobs` lists it; `kling resume` looks for it again where the provider \
                 allows it",
            );
        }
        if let E::Store(_) = error {
            failure = failure.hint("pass --journal PATH to use another ledger file");
        }
        failure
    }
}

impl From<kling_ledger::Error> for Failure {
    fn from(error: kling_ledger::Error) -> Self {
        Failure::from(&error)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kling::{Delivery, JobHandle};

    use super::*;

    fn job() -> JobHandle {
        "shortapi:abc".parse().unwrap()
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        let refused = kling::Error::Rejected {
            provider: "shortapi".into(),
            status: Some(400),
            message: "bad".into(),
            body: String::new(),
        };
        let unavailable = kling::Error::Unavailable {
            provider: "shortapi".into(),
            request: "GET /x".into(),
            tries: 6,
            message: "HTTP 500".into(),
        };
        let key = kling::Error::InvalidKey {
            provider: "shortapi".into(),
            problem: "a line break".into(),
        };
        let local = kling::Error::Local {
            job: Some(Box::new(job())),
            what: "the result of shortapi:abc could not be written".into(),
            error: "No space left on device".into(),
        };
        let protocol = kling::Error::Protocol {
            provider: "shortapi".into(),
            message: "not JSON".into(),
            body: String::new(),
        };
        for (error, exit, kind) in [
            (refused, Exit::Refused, "provider"),
            (unavailable, Exit::Transport, "transport"),
            (protocol, Exit::Transport, "transport"),
            (key, Exit::Usage, "usage"),
            (local, Exit::Usage, "local"),
        ] {
            let failure = Failure::from(&error);
            assert_eq!(failure.exit, exit, "{error}");
            assert_eq!(failure.document()["error"]["kind"], kind, "{error}");
        }
    }

    #[test]
    fn a_timeout_with_its_job_says_how_to_go_on_not_that_it_may_exist() {
        let error = kling::Error::Timeout {
            job: Some(Box::new(job())),
            after: Duration::from_secs(1),
            delivery: Delivery::MaybeSent,
        };
        let failure = Failure::from(&error);
        let doc = failure.document();
        assert_eq!(doc["error"]["may_exist"], false);
        assert_eq!(doc["error"]["job"], "shortapi:abc");
        assert!(failure.hints.iter().all(|h| !h.contains("may exist")));
        assert!(
            failure
                .hints
                .iter()
                .any(|h| h.contains("kling wait shortapi:abc"))
        );
        // Without its job, it may exist.
        let error = kling::Error::Timeout {
            job: None,
            after: Duration::from_secs(1),
            delivery: Delivery::MaybeSent,
        };
        let failure = Failure::from(&error);
        assert_eq!(failure.document()["error"]["may_exist"], true);
        assert!(failure.hints.iter().any(|h| h.contains("may exist")));
    }
}
