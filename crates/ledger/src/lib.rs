//! The ledger: the durable account of every job kling-rs runs, and the
//! pipeline that runs a job through it, so that a paid job is never lost
//! and never created twice.
//!
//! Every job is recorded before anything leaves: the intent, then the
//! moment its create is about to leave (`sending`), then the provider's job
//! id, each status, what the provider charged, and the verified result on
//! disk. A process that dies at any point leaves a row that says exactly
//! what is safe: an intent that never left is sent, a job with an id is
//! waited for and downloaded, a create that may have reached the provider
//! without an answer is looked up (where the provider allows it), never
//! created again.
//!
//! Any number of processes may share a ledger. A row is worked by one
//! process at a time: the process claims it with a lease that it renews
//! while it lives and that expires when it dies. A request has one
//! identity, enforced by the database, so two processes recording the same
//! intent get the same row.
//!
//! ```no_run
//! use kling::{Client, EditRequest, Media, Request};
//! use kling_ledger::{Intent, Ledger, RunOptions};
//!
//! # async fn run(client: Client) -> Result<(), kling_ledger::Error> {
//! let ledger = Ledger::open("jobs.sqlite3")?;
//! let request = Request::from(EditRequest::new(
//!     Media::url("https://example.com/street.mp4"),
//!     "Make it snow on @Video1",
//! ));
//! // Every rule is checked before anything is recorded; run again after a
//! // crash: the same intent finds the same row.
//! let intent = Intent::new(client.validate(&request)?, "snowy.mp4");
//! let done = ledger.run(&client, intent, &RunOptions::default()).await?;
//! println!("{} bytes in {}", done.size, done.output.display());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
// The error carries the job and the ledger's cause whole: a caller that
// lost a paid job's id needs every field, and errors are rare.
#![allow(clippy::result_large_err)]

mod batch;
mod error;
mod output;
mod pipeline;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
mod sqlite;
mod state;
mod store;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use batch::{Batch, Next};
pub use error::Error;
pub use output::check_output;
pub use pipeline::{Done, Event, Observer, PriceSource, Priced, RunOptions};
pub use record::{Intent, Output, Record, canonical};
#[cfg(feature = "postgres")]
pub use {deadpool_postgres, tokio_postgres};

/// The SHA-256 of `text`, in hex: what names a batch line's result file.
///
/// ```
/// assert_eq!(
///     kling_ledger::fingerprint("abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn fingerprint(text: &str) -> String {
    use sha2::Digest as _;
    kling_core::lower_hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// A path as the ledger records it: absolute, so that it means the same
/// from any directory.
///
/// ```
/// assert!(kling_ledger::absolute("out.mp4".as_ref()).is_absolute());
/// ```
pub fn absolute(path: &Path) -> std::path::PathBuf {
    record::absolute(path)
}
pub use state::{State, UnknownState};

/// A PostgreSQL URL as messages show it: without its password, whether in
/// the user part or as a `password` parameter.
///
/// ```
/// assert_eq!(
///     kling_ledger::redacted_url("postgres://kling:s3cret@db:5432/studio?password=x&sslmode=require"),
///     "postgres://kling@db:5432/studio?sslmode=require"
/// );
/// assert_eq!(kling_ledger::redacted_url("host=db password=x"), "a PostgreSQL database");
/// ```
#[cfg(feature = "postgres")]
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let kept: Vec<(String, String)> = parsed
                .query_pairs()
                .filter(|(key, _)| key != "password")
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
            if kept.is_empty() {
                parsed.set_query(None);
            } else {
                parsed.query_pairs_mut().clear().extend_pairs(kept);
            }
            parsed.to_string()
        }
        Err(_) => "a PostgreSQL database".to_owned(),
    }
}
pub use store::{Filter, StoreError};

use crate::store::{Change, Guard, Store};

/// How long a claim lasts unless renewed. A worker renews its claims every
/// third of it, so a live worker never loses one; a dead worker's claims
/// are free again this long after it died.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// A ledger: a store of job rows shared by any number of processes.
///
/// Cloning is cheap and shares the process's claims.
#[derive(Clone, Debug)]
pub struct Ledger {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    /// This process in claims: `HOST/PIDNS/PID/START/RANDOM`.
    owner: String,
    host: String,
    lease: Duration,
    /// The claims held now, each `OWNER#N`: two tasks of one process
    /// working the same row hold two different claims, so one of them
    /// waits.
    claims: Mutex<HashSet<String>>,
    next_claim: AtomicU64,
    /// The task renewing `claims`, restarted when its runtime has gone.
    heartbeat: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(heartbeat) = self
            .heartbeat
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            heartbeat.abort();
        }
    }
}

impl Ledger {
    /// Opens the ledger at `location`: a SQLite file (created when needed,
    /// an older schema migrated).
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let ledger = kling_ledger::Ledger::open(dir.path().join("jobs.sqlite3"))?;
    /// assert!(ledger.location().ends_with("jobs.sqlite3"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the file cannot be opened or migrated.
    pub fn open(location: impl AsRef<Path>) -> Result<Ledger, Error> {
        let store = sqlite::Sqlite::open(location.as_ref())?;
        Ok(Ledger::with_store(Arc::new(store), DEFAULT_LEASE))
    }

    /// Connects to the PostgreSQL ledger at `url` (`postgres://…`),
    /// creating or migrating its schema: one account of every job for any
    /// number of processes on any number of machines.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the database cannot be reached or migrated.
    #[cfg(feature = "postgres")]
    pub async fn connect(url: &str) -> Result<Ledger, Error> {
        let store = postgres::Postgres::connect(url).await?;
        Ok(Ledger::with_store(Arc::new(store), DEFAULT_LEASE))
    }

    /// Uses `pool`'s connections to a PostgreSQL database (a program that
    /// has a pool already, with its own TLS or limits), creating or
    /// migrating the ledger's schema in it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use kling_ledger::{deadpool_postgres, tokio_postgres};
    /// let config: tokio_postgres::Config = "postgres://kling@db.internal/studio".parse()?;
    /// let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    /// let pool = deadpool_postgres::Pool::builder(manager).max_size(8).build()?;
    /// let ledger = kling_ledger::Ledger::from_pool(pool, "studio").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the database cannot be reached or migrated;
    /// `name` says which database in messages.
    #[cfg(feature = "postgres")]
    pub async fn from_pool(
        pool: deadpool_postgres::Pool,
        name: impl Into<String>,
    ) -> Result<Ledger, Error> {
        let store = postgres::Postgres::with_pool(pool, name.into()).await?;
        Ok(Ledger::with_store(Arc::new(store), DEFAULT_LEASE))
    }

    /// How many SQL statements this ledger has run since it was opened,
    /// transaction control included: what the jobs cost the database.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let ledger = kling_ledger::Ledger::open(dir.path().join("jobs.sqlite3"))?;
    /// assert_eq!(ledger.statements(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn statements(&self) -> u64 {
        self.inner.store.statements()
    }

    fn with_store(store: Arc<dyn Store>, lease: Duration) -> Ledger {
        let host = host_name();
        let owner = format!(
            "{host}/{}/{}/{}/{:08x}",
            pid_namespace().unwrap_or(0),
            std::process::id(),
            process_start(std::process::id()).unwrap_or(0),
            fastrand::u32(..)
        );
        Ledger {
            inner: Arc::new(Inner {
                store,
                owner,
                host,
                lease,
                claims: Mutex::new(HashSet::new()),
                next_claim: AtomicU64::new(1),
                heartbeat: Mutex::new(None),
            }),
        }
    }

    /// Sets how long a claim lasts unless renewed (default
    /// [`DEFAULT_LEASE`]); at least one second.
    #[must_use]
    pub fn with_lease(self, lease: Duration) -> Ledger {
        Ledger::with_store(
            Arc::clone(&self.inner.store),
            lease.max(Duration::from_secs(1)),
        )
    }

    /// Where the ledger is.
    pub fn location(&self) -> String {
        self.inner.store.location()
    }

    /// Who this process is in claims: `HOST/PIDNS/PID/START/RANDOM` (PIDNS:
    /// its pid namespace, START: when it started, in clock ticks since
    /// boot, where known). Each claim adds `#N`.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// The rows `filter` selects, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub async fn jobs(&self, filter: &Filter) -> Result<Vec<Record>, Error> {
        Ok(self.inner.store.list(filter).await?)
    }

    /// The row numbered `intent`.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub async fn get(&self, intent: i64) -> Result<Option<Record>, Error> {
        Ok(self.inner.store.get(intent).await?)
    }

    /// The rows numbered `intents` that exist, by number, a few hundred a
    /// statement.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub async fn rows(&self, intents: &[i64]) -> Result<Vec<Record>, Error> {
        let mut rows = Vec::with_capacity(intents.len());
        for chunk in intents.chunks(store::CHUNK) {
            rows.extend(self.inner.store.get_many(chunk).await?);
        }
        rows.sort_by_key(|row| row.intent);
        Ok(rows)
    }

    /// The row that holds `job`, when this ledger recorded it.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub async fn find_job(&self, job: &kling::JobHandle) -> Result<Option<Record>, Error> {
        Ok(self.inner.store.by_job(&job.provider, &job.id).await?)
    }

    /// Adopts `job` for an intent whose create may have reached the
    /// provider without an answer: the user found it in the provider's
    /// dashboard. The row is then followed and downloaded like any other.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the row is not one whose job is unknown,
    /// names another provider, is being worked, or `job` is recorded on
    /// another row.
    pub async fn attach(&self, intent: i64, job: &kling::JobHandle) -> Result<Record, Error> {
        let row = self.require(intent).await?;
        if row.provider != job.provider {
            return Err(Error::Conflict(format!(
                "intent #{intent} was sent to {}, not {}",
                row.provider, job.provider
            )));
        }
        if let Some(other) = self.find_job(job).await? {
            return Err(Error::Conflict(format!(
                "{job} is already recorded on intent #{}",
                other.intent
            )));
        }
        let change = Change {
            job_id: Some(job.id.clone()),
            ..Change::state(State::Submitted).detail(format!("attached by hand: {job}"))
        };
        self.change_unclaimed(
            &row,
            &[State::MayExist, State::Sending],
            &change,
            "only an intent whose job is unknown (may_exist) can be attached",
        )
        .await
    }

    /// Releases an intent whose create may have reached the provider: the
    /// user checked that no job exists, or accepts the loss. It becomes
    /// `not_sent` and is not sent again by [`Ledger::resume`].
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the row is not `may_exist`, or is being
    /// worked.
    pub async fn forget(&self, intent: i64) -> Result<Record, Error> {
        let row = self.require(intent).await?;
        let change = Change {
            resend: Some(false),
            ..Change::state(State::NotSent).detail("forgotten: released by hand")
        };
        self.change_unclaimed(
            &row,
            &[State::MayExist],
            &change,
            "only an intent that may exist can be forgotten",
        )
        .await
    }

    /// Records what a status query outside a run saw (`kling status`,
    /// `kling cancel`), when the row is not being worked and has not moved
    /// past it. Returns the row when it changed.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub async fn observe(
        &self,
        job: &kling::JobHandle,
        state: State,
        detail: Option<String>,
    ) -> Result<Option<Record>, Error> {
        let Some(row) = self.find_job(job).await? else {
            return Ok(None);
        };
        let from: &[State] = match state {
            State::Queued => &[State::Submitted],
            State::Running => &[State::Submitted, State::Queued],
            State::Succeeded | State::Failed => &[State::Submitted, State::Queued, State::Running],
            State::Cancelled => &[
                State::Submitted,
                State::Queued,
                State::Running,
                State::Succeeded,
            ],
            _ => return Ok(None),
        };
        let mut change = Change::state(state);
        change.detail = detail;
        Ok(self
            .inner
            .store
            .update(row.intent, Guard::Unclaimed(from), &change, now_ms())
            .await?)
    }

    /// Sends the result of a row whose job is known to `output` instead
    /// (`kling wait JOB --out FILE`), when no process is working it.
    ///
    /// # Errors
    ///
    /// [`Error::Output`] for an unusable path; [`Error::Conflict`] when the
    /// row has no job yet, is done, or is being worked.
    pub async fn redirect(
        &self,
        intent: i64,
        output: &Path,
        overwrite: bool,
    ) -> Result<Record, Error> {
        check_output(output, overwrite)?;
        let row = self.require(intent).await?;
        let change = Change {
            output: Some(absolute(output).display().to_string()),
            ..Change::default()
        };
        self.change_unclaimed(
            &row,
            &[
                State::Submitted,
                State::Queued,
                State::Running,
                State::Succeeded,
            ],
            &change,
            "only a job whose result is not on disk yet can be sent elsewhere",
        )
        .await
    }

    async fn require(&self, intent: i64) -> Result<Record, Error> {
        self.get(intent)
            .await?
            .ok_or_else(|| Error::Conflict(format!("no intent #{intent} in {}", self.location())))
    }

    async fn change_unclaimed(
        &self,
        row: &Record,
        from: &[State],
        change: &Change,
        rule: &str,
    ) -> Result<Record, Error> {
        match self
            .inner
            .store
            .update(row.intent, Guard::Unclaimed(from), change, now_ms())
            .await
        {
            Ok(Some(row)) => Ok(row),
            Ok(None) => Err(Error::Conflict(format!(
                "intent #{} is {}{}; {rule}",
                row.intent,
                row.state,
                if row.claim_until.is_some_and(|until| until > now_ms()) {
                    " and being worked by another process"
                } else {
                    ""
                }
            ))),
            Err(e) if e.conflict => Err(Error::Conflict(format!(
                "that job is already recorded on another row ({e})"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A new claim token of this process: `OWNER#N`.
    pub(crate) fn claim_token(&self) -> String {
        let n = self.inner.next_claim.fetch_add(1, Ordering::Relaxed);
        format!("{}#{n}", self.inner.owner)
    }

    /// Notes `token` as held, and makes sure something renews it.
    pub(crate) fn hold(&self, token: &str) {
        self.inner
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_owned());
        let mut heartbeat = self
            .inner
            .heartbeat
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if heartbeat.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        // The task holds the ledger weakly: it ends with the last handle.
        let inner = Arc::downgrade(&self.inner);
        let beat = self.inner.lease / 3;
        *heartbeat = Some(
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(beat).await;
                    let Some(inner) = inner.upgrade() else { return };
                    let held: Vec<String> = inner
                        .claims
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .iter()
                        .cloned()
                        .collect();
                    if !held.is_empty() {
                        // A failed renewal is tried again at the next beat;
                        // the lease leaves two more before it lapses.
                        let until = now_ms() + millis(inner.lease);
                        let _ = inner.store.renew(&held, until).await;
                    }
                }
            })
            .abort_handle(),
        );
    }

    /// Stops renewing `token`.
    pub(crate) fn stop_renewing(&self, token: &str) {
        self.inner
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    /// Gives `token`'s claim on `intent` up: no longer renewed, and freed
    /// in the store (in the background when the run was dropped midway).
    pub(crate) fn let_go(&self, intent: i64, token: &str) {
        self.stop_renewing(token);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, token) = (Arc::clone(&self.inner.store), token.to_owned());
            // A failed release only delays others until the lease lapses.
            runtime.spawn(async move {
                let _ = store.release(intent, &token).await;
            });
        }
    }
}

/// Ends the process on the spot, as `kill -9` would, when
/// `KLING_LEDGER_CRASH_AT` names `point`: the process-level tests crash a
/// run between each two steps and check that a restart loses nothing and
/// creates nothing twice. Compiled only with the `crash-points` feature.
#[cfg(feature = "crash-points")]
pub(crate) fn crash_point(point: &str) {
    if std::env::var("KLING_LEDGER_CRASH_AT").is_ok_and(|at| at == point) {
        std::process::abort();
    }
}

#[cfg(not(feature = "crash-points"))]
#[inline]
pub(crate) fn crash_point(_point: &str) {}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    epoch_ms(SystemTime::now())
}

/// `at` in milliseconds since the Unix epoch.
pub(crate) fn epoch_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// When process `pid` started, in clock ticks since boot (Linux), so that a
/// reused pid is not taken for the process that held a claim.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// This process's pid namespace (the inode of `/proc/self/ns/pid`), so
/// that a pid is only compared with pids of the same namespace.
fn pid_namespace() -> Option<u64> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let text = link.to_string_lossy();
    text.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// Whether the claim `token` (`OWNER#N`) belongs to a process of this
/// machine and pid namespace that has ended: its claims can be taken at
/// once instead of when their lease lapses. A process that cannot be seen
/// is taken for dead only when this process can see others (`/proc` not
/// mounted with `hidepid`).
pub(crate) fn owner_is_dead(token: &str) -> bool {
    let owner = token.split_once('#').map_or(token, |(owner, _)| owner);
    let mut parts = owner.rsplitn(5, '/');
    let (Some(_), Some(start), Some(pid), Some(namespace), Some(host)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(start), Ok(pid), Ok(namespace)) = (
        start.parse::<u64>(),
        pid.parse::<u32>(),
        namespace.parse::<u64>(),
    ) else {
        return false;
    };
    if host != host_name() || start == 0 || namespace == 0 || pid_namespace() != Some(namespace) {
        return false;
    }
    match process_start(pid) {
        Some(now) => now != start,
        None => process_start(1).is_some(),
    }
}

/// This machine's name, for the record of who wrote which file.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
