//! The states of a ledger row and what each one allows.

use std::fmt;
use std::str::FromStr;

use kling::JobState;

/// Where a recorded job stands.
///
/// ```text
/// intent ─▶ sending ─▶ submitted ─▶ queued ─▶ running ─▶ succeeded ─▶ downloaded
///   │          │                                   └──────▶ failed | cancelled
///   │          └──no answer──▶ may_exist ──found again (reconciled, attached)──▶ submitted
///   └──refused, or interrupted before sending──▶ not_sent
/// ```
///
/// The line between `intent` and `sending` is the line between "safe to
/// send again" and "may have been paid for": a row is `sending` from the
/// moment before its create leaves until the provider's answer is
/// recorded.
///
/// ```
/// use kling_ledger::State;
///
/// assert!(State::MayExist.may_exist());
/// assert!(!State::NotSent.may_exist());
/// assert!(State::Running.has_job());
/// assert_eq!("may_exist".parse::<State>().unwrap(), State::MayExist);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum State {
    /// Recorded; nothing has left yet (uploads may run).
    Intent,
    /// The create is about to leave, or has left without an answer yet.
    Sending,
    /// Not sent: refused by a rule, a budget or the provider, or
    /// interrupted before it left. Sent again only when interrupted.
    NotSent,
    /// The create may have reached the provider without an answer: a job
    /// may exist. It is reconciled (looked up, or attached by hand), never
    /// created again.
    MayExist,
    /// The provider answered with a job id.
    Submitted,
    /// The job waits to run.
    Queued,
    /// The job runs.
    Running,
    /// The job succeeded; its result is not on disk yet.
    Succeeded,
    /// The result is on disk, verified.
    Downloaded,
    /// The job ran and failed.
    Failed,
    /// The job was cancelled.
    Cancelled,
}

impl State {
    /// Every state, in pipeline order.
    pub const ALL: [State; 11] = [
        State::Intent,
        State::Sending,
        State::NotSent,
        State::MayExist,
        State::Submitted,
        State::Queued,
        State::Running,
        State::Succeeded,
        State::Downloaded,
        State::Failed,
        State::Cancelled,
    ];

    /// The name stored and printed: `may_exist`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Intent => "intent",
            State::Sending => "sending",
            State::NotSent => "not_sent",
            State::MayExist => "may_exist",
            State::Submitted => "submitted",
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Downloaded => "downloaded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    /// A job may exist at the provider whose id is not recorded.
    pub fn may_exist(self) -> bool {
        self == State::MayExist
    }

    /// The provider's job id is known and the job has not ended here.
    pub fn has_job(self) -> bool {
        matches!(
            self,
            State::Submitted | State::Queued | State::Running | State::Succeeded
        )
    }

    /// Nothing more will happen to the row by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Downloaded | State::Failed | State::Cancelled | State::NotSent
        )
    }

    /// The state a provider's job state is recorded as.
    pub fn of(state: &JobState) -> State {
        match state {
            JobState::Queued => State::Queued,
            JobState::Succeeded { .. } => State::Succeeded,
            JobState::Failed { .. } => State::Failed,
            JobState::Cancelled => State::Cancelled,
            _ => State::Running,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a [`State`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a ledger state")]
pub struct UnknownState(String);

impl FromStr for State {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>(), Ok(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert!("lost".parse::<State>().is_err());
    }
}
