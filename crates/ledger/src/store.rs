//! What a ledger backend does: rows written atomically, claimed with a
//! lease, changed only by their claim holder. SQLite (`sqlite.rs`) is the
//! embedded backend; the conformance suite (`tests/conformance.rs`) runs
//! the same checks on every backend through [`Ledger`](crate::Ledger).

use std::fmt;

use async_trait::async_trait;

use crate::{Record, State};

/// A ledger backend failed (disk full, file locked, database gone).
#[derive(Debug, thiserror::Error)]
#[error("the ledger {location}: {message}")]
pub struct StoreError {
    pub(crate) location: String,
    pub(crate) message: String,
    /// A uniqueness constraint refused the write: the job id is already
    /// recorded on another row.
    pub(crate) conflict: bool,
}

impl StoreError {
    /// Where the ledger is: a file, or a database URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }
}

pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// A row before it is written.
#[derive(Clone, Debug)]
pub(crate) struct NewRecord {
    pub(crate) identity: String,
    pub(crate) attempt: u32,
    pub(crate) provider: String,
    pub(crate) base_url: Option<String>,
    pub(crate) model: String,
    pub(crate) task: String,
    pub(crate) request: String,
    pub(crate) seconds: Option<u32>,
    pub(crate) batch: Option<String>,
    pub(crate) batch_line: Option<i64>,
    pub(crate) output: Option<String>,
    pub(crate) output_dir: Option<String>,
    pub(crate) estimate_micros: Option<u64>,
    /// `intent`, or `submitted` for a job created elsewhere and adopted.
    pub(crate) state: State,
    pub(crate) job_id: Option<String>,
    /// Whether the result may replace a file it did not write.
    pub(crate) overwrite: bool,
}

/// What a write changes; `None` leaves a column as it is.
#[derive(Clone, Debug, Default)]
pub(crate) struct Change {
    pub(crate) state: Option<State>,
    pub(crate) resend: Option<bool>,
    pub(crate) job_id: Option<String>,
    pub(crate) sent_request: Option<String>,
    pub(crate) sending_at: Option<i64>,
    pub(crate) output: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) charged_usd_micros: Option<u64>,
    pub(crate) charged_credits_micros: Option<u64>,
    pub(crate) detail: Option<String>,
    pub(crate) batch_line: Option<i64>,
    /// When the provider called back, in milliseconds since the epoch.
    pub(crate) callback_at: Option<i64>,
    /// Lets the claim go in the same write (the row is done).
    pub(crate) release: bool,
}

impl Change {
    pub(crate) fn state(state: State) -> Self {
        Change {
            state: Some(state),
            ..Change::default()
        }
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Who may make a change.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Guard<'a> {
    /// The claim holder only.
    Owner(&'a str),
    /// Anyone, while the row is in one of these states and unclaimed (or
    /// its lease has expired).
    Unclaimed(&'a [State]),
    /// Anyone, claimed or not, while the row has no job id and says its
    /// create is leaving or may have left: a created job's id is written
    /// even by a process whose claim lapsed while the create was in flight.
    Orphan,
}

/// The outcome of a claim.
#[derive(Clone, Debug)]
pub(crate) enum Claim {
    /// The row is ours until the lease expires; as it was when claimed.
    Taken(Record),
    /// Another process holds it.
    Held(Record),
}

/// Which rows a listing returns.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Filter {
    /// Only rows with something left to do.
    pub unfinished: bool,
    /// Only this provider's.
    pub provider: Option<String>,
    /// Only rows created at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    /// Only rows created before this time (seconds since the epoch).
    pub until: Option<i64>,
}

impl Filter {
    /// Every row.
    pub fn all() -> Self {
        Filter::default()
    }

    /// Rows with something left to do.
    pub fn unfinished() -> Self {
        Filter {
            unfinished: true,
            ..Filter::default()
        }
    }

    /// Only `provider`'s rows.
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Only rows created in `[since, until)`, in seconds since the epoch.
    #[must_use]
    pub fn created(mut self, since: Option<i64>, until: Option<i64>) -> Self {
        self.since = since;
        self.until = until;
        self
    }
}

/// The rows with something left to do, in SQL that both backends read: not
/// ended, or refused in a way that may be sent again.
pub(crate) const UNFINISHED: &str = "(state NOT IN ('downloaded', 'failed', 'cancelled', \
     'not_sent') OR (state = 'not_sent' AND resend))";

/// The rows a batch's worker may take: the batch's, for its provider at its
/// address (a row recorded without an address is any address's), other
/// than `skip`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queue<'a> {
    pub(crate) batch: &'a str,
    pub(crate) provider: &'a str,
    /// `""` for the provider's default address.
    pub(crate) base_url: &'a str,
    pub(crate) skip: &'a [i64],
}

/// The SQL that keeps a [`Queue`]'s rows: `provider` and `base_url` are the
/// placeholders that hold them.
pub(crate) fn queued(provider: &str, base_url: &str) -> String {
    format!("provider = {provider} AND (base_url = '' OR base_url = {base_url})")
}

/// How many rows of a batch have something left to do, and when the
/// soonest live lease among them lapses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Left {
    pub(crate) rows: u64,
    /// Milliseconds since the epoch; `None` when no row left is claimed.
    pub(crate) soonest_lapse: Option<i64>,
}

/// The columns a new row is written with, in the order of
/// [`NewRecord`]'s values (`created_at` and `updated_at` both `now`).
pub(crate) const INSERT_COLUMNS: &str = "identity, attempt, created_at, updated_at, provider, \
     base_url, model, task, request, seconds, batch, batch_line, state, output, output_dir, \
     estimate_micros, job_id, overwrite";

/// How many values [`INSERT_COLUMNS`] takes.
pub(crate) const INSERT_WIDTH: usize = 18;

/// `(P1, …, P18), (P19, …)`: the VALUES of `rows` new rows, each
/// placeholder written by `placeholder` from its 1-based number.
pub(crate) fn values_clause(rows: usize, placeholder: impl Fn(usize) -> String) -> String {
    (0..rows)
        .map(|row| {
            let values: Vec<String> = (1..=INSERT_WIDTH)
                .map(|column| placeholder(row * INSERT_WIDTH + column))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many rows one multi-row statement writes or reads at most: well
/// within both backends' limits on parameters.
pub(crate) const CHUNK: usize = 500;

/// Totals of past charges, for estimates where no price is published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PastCharges {
    pub(crate) jobs: u64,
    pub(crate) micros: u64,
    pub(crate) seconds: u64,
}

/// A ledger backend. Every method is one atomic step.
#[async_trait]
pub(crate) trait Store: Send + Sync + fmt::Debug {
    /// Where it is, for messages.
    fn location(&self) -> String;

    /// How many SQL statements this store has run, transaction control
    /// included.
    fn statements(&self) -> u64;

    /// Writes `new` unless a row with its identity and attempt exists;
    /// returns the row, and whether it was written now.
    async fn insert(&self, new: NewRecord, now: i64) -> StoreResult<(Record, bool)>;

    /// Writes each of `new` (at most [`CHUNK`]) unless a row with its
    /// identity and attempt exists, in one statement.
    async fn insert_many(&self, new: &[NewRecord], now: i64) -> StoreResult<()>;

    /// The row numbered `intent`.
    async fn get(&self, intent: i64) -> StoreResult<Option<Record>>;

    /// The rows numbered `intents` (at most [`CHUNK`]), in one statement.
    async fn get_many(&self, intents: &[i64]) -> StoreResult<Vec<Record>>;

    /// The latest attempt of each of `identities` (at most [`CHUNK`]) that
    /// has a row, in one statement.
    async fn latest_many(&self, identities: &[String]) -> StoreResult<Vec<Record>>;

    /// The latest attempt of `identity`.
    async fn latest(&self, identity: &str) -> StoreResult<Option<Record>>;

    /// The row holding `job_id` at `provider`.
    async fn by_job(&self, provider: &str, job_id: &str) -> StoreResult<Option<Record>>;

    /// Rows, oldest first.
    async fn list(&self, filter: &Filter) -> StoreResult<Vec<Record>>;

    /// What `provider` charged in dollars for `model` so far: the jobs
    /// with a charge and a known length, their micro-dollars and seconds.
    async fn past_charges(&self, provider: &str, model: &str) -> StoreResult<PastCharges>;

    /// The job ids recorded for `provider`.
    async fn job_ids(&self, provider: &str) -> StoreResult<Vec<String>>;

    /// Claims `intent` for `owner` until `until_ms`, unless another owner's
    /// lease holds at `now_ms`; a lease held by `dead` (an owner known to
    /// have died) does not hold.
    async fn claim(
        &self,
        intent: i64,
        owner: &str,
        dead: Option<&str>,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Option<Claim>>;

    /// Claims for `owner`, until `until_ms`, the first row of `queue` (by
    /// line) with something left to do whose lease is free at `now_ms`, in
    /// one statement; rows being claimed by others at the same instant are
    /// skipped, not waited for.
    async fn claim_next(
        &self,
        queue: &Queue<'_>,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Option<Record>>;

    /// What is left of `queue` at `now_ms`.
    async fn left(&self, queue: &Queue<'_>, now_ms: i64) -> StoreResult<Left>;

    /// Extends the leases of the claims `tokens` to `until_ms`; returns how
    /// many are still held.
    async fn renew(&self, tokens: &[String], until_ms: i64) -> StoreResult<u64>;

    /// Gives `intent` up, when `owner` holds it.
    async fn release(&self, intent: i64, owner: &str) -> StoreResult<()>;

    /// Applies `change` to `intent` when `guard` allows; `None` when it
    /// does not (the claim was lost, or the row is not in those states).
    async fn update(
        &self,
        intent: i64,
        guard: Guard<'_>,
        change: &Change,
        now_ms: i64,
    ) -> StoreResult<Option<Record>>;
}
