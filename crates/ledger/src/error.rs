//! The ledger's error: what went wrong, and whether a paid job may exist.

use std::path::PathBuf;

use kling::{JobHandle, Usd};

use crate::StoreError;

/// Why a job did not run to a verified result.
///
/// The predicates answer what a caller decides on: [`may_exist`]
/// (a job may exist whose id is not known), [`job`] (the job concerned,
/// when known), [`is_usage`] (nothing was sent because of how the ledger
/// or the output was set up).
///
/// [`may_exist`]: Error::may_exist
/// [`job`]: Error::job
/// [`is_usage`]: Error::is_usage
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider, the transport, or a local rule.
    #[error(transparent)]
    Kling(#[from] kling::Error),

    /// The ledger could not be read or written. When this happens before
    /// the create, nothing was sent.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The output path cannot take the result; nothing was sent.
    #[error("cannot write the result to {}: {problem}; nothing was sent", path.display())]
    Output {
        /// The path.
        path: PathBuf,
        /// What is wrong with it, and what would do.
        problem: String,
    },

    /// The estimate is above the budget, or unknown; nothing was sent.
    #[error("{}; nothing was sent", budget_note(*.estimate, *.max))]
    Budget {
        /// The estimate, when known.
        estimate: Option<Usd>,
        /// The budget.
        max: Usd,
    },

    /// The job was created but its id could not be recorded (a full disk):
    /// it is kept in memory and written as soon as the ledger can be.
    #[error(
        "job {job} was created but the ledger could not record it ({source}); record it with \
         `kling jobs attach {intent} {job}` once the ledger can be written"
    )]
    Unrecorded {
        /// The job.
        job: JobHandle,
        /// Its row.
        intent: i64,
        /// Why it could not be written.
        source: StoreError,
    },

    /// Another process works this row; its result will be there when it
    /// is done.
    #[error("intent #{intent} is being worked by another process ({owner})")]
    Busy {
        /// The row.
        intent: i64,
        /// Who holds it.
        owner: String,
    },

    /// The row cannot be changed that way (attach to a row that has a job,
    /// a job already recorded elsewhere, an unknown row).
    #[error("{0}")]
    Conflict(String),

    /// A job may exist at the provider whose id is not known: it is looked
    /// up where the provider allows it, or attached by hand; never created
    /// again.
    #[error("intent #{intent} may exist at {provider}: {reason}")]
    MayExist {
        /// The row.
        intent: i64,
        /// The provider.
        provider: String,
        /// Why it may exist, and what to do.
        reason: String,
    },

    /// Refused before sending and not to be sent again as it is (a rule,
    /// a budget, or the provider refused it).
    #[error(
        "intent #{intent} was refused earlier and is not sent again as it is: {reason} (a \
         batch's --retry-failed, or Ledger::retry, sends it again)"
    )]
    Refused {
        /// The row.
        intent: i64,
        /// The refusal.
        reason: String,
    },
}

fn budget_note(estimate: Option<Usd>, max: Usd) -> String {
    match estimate {
        Some(estimate) => format!("the estimate {estimate} is above the budget {max} (--max-cost)"),
        None => format!(
            "a budget of {max} (--max-cost) is set but the cost is not known before sending"
        ),
    }
}

impl Error {
    /// A job may exist whose id is not known.
    pub fn may_exist(&self) -> bool {
        match self {
            Error::MayExist { .. } => true,
            Error::Kling(e) => e.may_have_been_sent() && e.job().is_none(),
            _ => false,
        }
    }

    /// The job concerned, when its id is known.
    pub fn job(&self) -> Option<&JobHandle> {
        match self {
            Error::Kling(e) => e.job(),
            Error::Unrecorded { job, .. } => Some(job),
            _ => None,
        }
    }

    /// Nothing was sent because of how the ledger, the output or the key
    /// was set up.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Store(_) | Error::Output { .. } | Error::Conflict(_)
        )
    }

    /// The provider's or the transport's error, when it is one.
    pub fn kling(&self) -> Option<&kling::Error> {
        match self {
            Error::Kling(e) => Some(e),
            _ => None,
        }
    }
}
