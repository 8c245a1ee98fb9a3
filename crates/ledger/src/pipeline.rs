//! The pipeline a job runs through the ledger: record the intent, upload,
//! mark `sending`, create once, follow, download and verify; resume and
//! reconcile what a crash left.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kling::{Checked, Client, Estimate, JobHandle, JobStatus, Price, Usd, WaitOptions};
use tokio::sync::mpsc;

use crate::record::{Output, absolute, identity, recorded};
use crate::store::{Change, Claim, Filter, Guard, NewRecord, StoreError};
use crate::{Error, Intent, Ledger, Record, State, millis, now_ms};

/// What happens to a job as it runs, for a progress display.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The row is claimed and worked from this state.
    Started {
        /// The row.
        intent: i64,
        /// Its state when claimed.
        state: State,
    },
    /// Another process works the row; this one waits for it.
    WaitingForOther {
        /// The row.
        intent: i64,
        /// Who holds it.
        owner: String,
    },
    /// The create was answered.
    Submitted {
        /// The row.
        intent: i64,
        /// The job.
        job: JobHandle,
    },
    /// A create whose answer was lost was found again at the provider.
    Reconciled {
        /// The row.
        intent: i64,
        /// The job found.
        job: JobHandle,
    },
    /// A status was seen.
    Status {
        /// The row.
        intent: i64,
        /// The status.
        status: JobStatus,
    },
    /// Result bytes arrived.
    Downloading {
        /// The row.
        intent: i64,
        /// Bytes on disk.
        written: u64,
        /// The total, when announced.
        total: Option<u64>,
    },
}

/// Receives [`Event`]s.
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// How a run goes.
#[derive(Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// The longest a run waits for its job, its download included, and for
    /// another process that holds the row.
    pub timeout: Duration,
    /// Whether to wait while another process works the row (resume), or to
    /// return [`Error::Busy`] at once (a batch, which comes back later).
    pub wait_for_others: bool,
    /// Who hears about progress.
    pub observer: Option<Observer>,
    /// Where this process writes results: a row's file name in this
    /// directory, whatever directory the process that recorded the row
    /// named. Workers of one batch on several machines each write to their
    /// own disk; the row records which host wrote which file.
    pub results_in: Option<PathBuf>,
}

impl Default for RunOptions {
    /// 30 minutes, waiting for other processes, no observer.
    fn default() -> Self {
        RunOptions {
            timeout: Duration::from_secs(30 * 60),
            wait_for_others: true,
            observer: None,
            results_in: None,
        }
    }
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("timeout", &self.timeout)
            .field("wait_for_others", &self.wait_for_others)
            .field("results_in", &self.results_in)
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Sets the timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets whether to wait for a row another process works.
    #[must_use]
    pub fn wait_for_others(mut self, wait: bool) -> Self {
        self.wait_for_others = wait;
        self
    }

    /// Writes results in `dir` (see [`RunOptions::results_in`]).
    ///
    /// ```
    /// let options = kling_ledger::RunOptions::default().results_in("/mnt/renders");
    /// assert_eq!(options.results_in.as_deref(), Some("/mnt/renders".as_ref()));
    /// ```
    #[must_use]
    pub fn results_in(mut self, dir: impl Into<PathBuf>) -> Self {
        self.results_in = Some(dir.into());
        self
    }

    /// Sets the observer.
    #[must_use]
    pub fn observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    #[allow(clippy::needless_pass_by_value)] // events are built at the call
    fn emit(&self, event: Event) {
        if let Some(observer) = &self.observer {
            observer(&event);
        }
    }
}

/// A job run to a verified result on disk.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Done {
    /// Its row, as it ended.
    pub record: Record,
    /// The result file.
    pub output: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The final status, when this run saw it (not when another process
    /// finished the job).
    pub status: Option<JobStatus>,
}

/// Where an estimate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PriceSource {
    /// The provider's published price.
    Published,
    /// The ledger's own past charges for the model, per second billed.
    PastCharges {
        /// How many charged jobs it averages.
        jobs: usize,
    },
    /// Not known.
    Unknown,
}

/// An estimate, from the published price or, where none is published,
/// from what the provider charged for the same model before.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Priced {
    /// The published-price estimate.
    pub published: Estimate,
    /// The estimate in dollars, when known either way.
    pub usd: Option<Usd>,
    /// Where `usd` comes from.
    pub source: PriceSource,
}

impl fmt::Display for Priced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.source, self.usd, self.published.seconds) {
            (PriceSource::PastCharges { jobs }, Some(usd), Some(seconds)) => write!(
                f,
                "{usd} ({seconds} s, from the ledger's {jobs} past charge{} for this model; no \
                 price is published)",
                if jobs == 1 { "" } else { "s" }
            ),
            _ => self.published.fmt(f),
        }
    }
}

impl Ledger {
    /// Prices `checked` on `client`'s provider: the published price, or,
    /// where none is published, the average per second of what the
    /// provider charged for the same model in this ledger.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when past charges cannot be read.
    pub async fn estimate(&self, client: &Client, checked: &Checked) -> Result<Priced, Error> {
        let published = client.estimate(checked);
        if published.usd.is_some() || matches!(published.price, Price::PerRequest(_)) {
            return Ok(Priced {
                usd: published.usd,
                published,
                source: PriceSource::Published,
            });
        }
        let (usd, source) = match published.seconds {
            Some(seconds) => {
                let model = checked.offering().wire_model;
                let past = self
                    .inner
                    .store
                    .past_charges(client.provider().name(), model)
                    .await?;
                if past.seconds == 0 {
                    (None, PriceSource::Unknown)
                } else {
                    let usd = Usd::from_micros(
                        past.micros
                            .saturating_mul(u64::from(seconds))
                            .div_ceil(past.seconds),
                    );
                    let jobs = usize::try_from(past.jobs).unwrap_or(usize::MAX);
                    (Some(usd), PriceSource::PastCharges { jobs })
                }
            }
            None => (None, PriceSource::Unknown),
        };
        Ok(Priced {
            published,
            usd,
            source,
        })
    }

    /// Records `intent` for `client`'s provider, or finds the row that
    /// already records it. A new row is written only after every check
    /// that can refuse it: the rules, the output path, the budget.
    ///
    /// # Errors
    ///
    /// [`Error::Kling`] for a broken rule, [`Error::Output`],
    /// [`Error::Budget`], [`Error::Store`]; nothing was sent.
    pub async fn record(&self, client: &Client, intent: &Intent) -> Result<Record, Error> {
        let identity = identity_of(client, intent)?;
        if let Some(row) = self.inner.store.latest(&identity).await? {
            return Ok(row);
        }
        let new = self.new_row(client, intent, identity).await?;
        let (row, _) = self.inner.store.insert(new, now_ms() / 1000).await?;
        crate::crash_point("recorded");
        Ok(row)
    }

    /// The row `intent` would be written as, once every check that can
    /// refuse it has passed: the output path, the budget.
    pub(crate) async fn new_row(
        &self,
        client: &Client,
        intent: &Intent,
        identity: String,
    ) -> Result<NewRecord, Error> {
        let checked = &intent.checked;
        let request = checked.request();
        let provider = client.provider();
        let offering = provider.capabilities().accept(checked)?;
        match &intent.output {
            Output::File(path) => crate::check_output(path, intent.overwrite)?,
            Output::NamedByJob(dir) => {
                crate::output::check_dir(dir).map_err(|problem| Error::Output {
                    path: dir.clone(),
                    problem,
                })?;
            }
        }
        let priced = self.estimate(client, checked).await?;
        if let Some(max) = intent.max_cost
            && priced.usd.is_none_or(|usd| usd > max)
        {
            return Err(Error::Budget {
                estimate: priced.usd,
                max,
            });
        }
        let (output, output_dir) = intent.output.recorded();
        let (batch, batch_line) = intent.batch.clone().unzip();
        Ok(NewRecord {
            identity,
            attempt: 1,
            provider: provider.name().to_owned(),
            base_url: provider.base_url().map(str::to_owned),
            model: offering.wire_model.to_owned(),
            task: request.task().as_str().to_owned(),
            request: recorded(request),
            seconds: priced.published.seconds,
            batch,
            batch_line,
            output,
            output_dir,
            estimate_micros: priced.usd.map(Usd::micros),
            state: State::Intent,
            job_id: None,
            overwrite: intent.overwrite,
        })
    }

    /// Records `job`, created elsewhere (another tool, the provider's
    /// dashboard), so that it is followed and downloaded like any other:
    /// its result goes to `output`. A job already recorded keeps its row.
    ///
    /// # Errors
    ///
    /// [`Error::Output`] for an unusable output; [`Error::Store`].
    pub async fn adopt(
        &self,
        client: &Client,
        job: &JobHandle,
        output: Output,
        overwrite: bool,
    ) -> Result<Record, Error> {
        if let Some(row) = self.find_job(job).await? {
            return Ok(row);
        }
        let (output, output_dir) = match &output {
            Output::File(path) => {
                crate::check_output(path, overwrite)?;
                (Some(absolute(path)), None)
            }
            Output::NamedByJob(dir) => {
                crate::output::check_dir(dir).map_err(|problem| Error::Output {
                    path: dir.clone(),
                    problem,
                })?;
                (None, Some(absolute(dir)))
            }
        };
        let provider = client.provider();
        let base_url = provider.base_url().map(str::to_owned);
        let new = NewRecord {
            identity: identity(
                provider.name(),
                base_url.as_deref(),
                &format!("job\n{}", job.id),
            ),
            attempt: 1,
            provider: provider.name().to_owned(),
            base_url,
            model: job.model.clone().unwrap_or_default(),
            task: String::new(),
            request: String::new(),
            seconds: None,
            batch: None,
            batch_line: None,
            output: output.map(|p| p.display().to_string()),
            output_dir: output_dir.map(|p| p.display().to_string()),
            estimate_micros: None,
            state: State::Submitted,
            job_id: Some(job.id.clone()),
            overwrite,
        };
        Ok(self.inner.store.insert(new, now_ms() / 1000).await?.0)
    }

    /// Records a new attempt of a row that failed, was cancelled or was
    /// refused, so that the same request is sent again on purpose (a
    /// batch's `--retry-failed`, after topping up an account or fixing a
    /// key). Two processes doing it at once get one row.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the row has not failed; [`Error::Store`].
    pub async fn retry(&self, row: &Record) -> Result<Record, Error> {
        let refused = row.state == State::NotSent && !row.resend;
        if !refused && !matches!(row.state, State::Failed | State::Cancelled) {
            return Err(Error::Conflict(format!(
                "intent #{} is {}; only a failed, cancelled or refused job is sent again",
                row.intent, row.state
            )));
        }
        let new = NewRecord {
            identity: row.identity.clone(),
            attempt: row.attempt.saturating_add(1),
            provider: row.provider.clone(),
            base_url: row.base_url.clone(),
            model: row.model.clone(),
            task: row.task.clone(),
            request: row.request.clone(),
            seconds: row.seconds,
            batch: row.batch.clone(),
            batch_line: row.batch_line,
            output: row.output.as_ref().map(|p| p.display().to_string()),
            output_dir: row.output_dir.as_ref().map(|p| p.display().to_string()),
            estimate_micros: row.estimate.map(Usd::micros),
            state: State::Intent,
            job_id: None,
            overwrite: row.overwrite,
        };
        Ok(self.inner.store.insert(new, now_ms() / 1000).await?.0)
    }

    /// Runs `intent` to a verified result: records it (or finds its row),
    /// claims the row and works it from wherever it stands.
    ///
    /// # Errors
    ///
    /// As [`Ledger::record`] and [`Ledger::work`].
    pub async fn run(
        &self,
        client: &Client,
        intent: Intent,
        options: &RunOptions,
    ) -> Result<Done, Error> {
        let row = self.record(client, &intent).await?;
        self.work_as(client, row.intent, options, Some(intent.checked))
            .await
    }

    /// Works the unfinished rows of `client`'s provider (at its address)
    /// to the end, at most `concurrency` at a time, and returns each row
    /// with how it ended. Rows another process works are waited for.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the rows cannot be listed; each row's own
    /// error is in its result.
    pub async fn resume(
        &self,
        client: &Client,
        concurrency: usize,
        options: &RunOptions,
    ) -> Result<Vec<(Record, Result<Done, Error>)>, Error> {
        let provider = client.provider();
        let rows: Vec<Record> = self
            .jobs(&Filter::unfinished().provider(provider.name()))
            .await?
            .into_iter()
            .filter(|row| serves(client, row))
            .collect();
        // First every row nobody else works, without waiting; then the
        // rows another process held, waiting for them: a held row never
        // keeps a free one waiting.
        let slots = tokio::sync::Semaphore::new(concurrency.max(1));
        let first = options.clone().wait_for_others(false);
        let runs = rows.into_iter().map(|row| {
            let slots = &slots;
            let first = &first;
            async move {
                let _slot = slots.acquire().await;
                let result = self.work(client, row.intent, first).await;
                (row, result)
            }
        });
        let mut results = futures_util::future::join_all(runs).await;
        let runs = results
            .iter_mut()
            .filter(|(_, result)| matches!(result, Err(Error::Busy { .. })))
            .map(|(row, result)| {
                let slots = &slots;
                async move {
                    let _slot = slots.acquire().await;
                    *result = self.work(client, row.intent, options).await;
                }
            });
        futures_util::future::join_all(runs).await;
        Ok(results)
    }

    /// Claims row `intent` and works it from wherever it stands: sends an
    /// intent that never left, looks up a create that may have reached the
    /// provider, follows a job and downloads its result. Returns at once
    /// for a row that is done.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when another process holds the row and
    /// `options.wait_for_others` is off (or the timeout passes);
    /// [`Error::MayExist`] when a lost create cannot be found;
    /// [`Error::Refused`] for a row refused earlier; the provider's and
    /// transport's errors.
    pub async fn work(
        &self,
        client: &Client,
        intent: i64,
        options: &RunOptions,
    ) -> Result<Done, Error> {
        self.work_as(client, intent, options, None).await
    }

    /// Like [`Ledger::work`], for a row whose request this run has checked
    /// already (a batch validates every line before it starts): if the row
    /// is still to send and records that request, `checked` is sent as it
    /// is, without validating again.
    ///
    /// # Errors
    ///
    /// As [`Ledger::work`].
    pub async fn work_checked(
        &self,
        client: &Client,
        intent: i64,
        checked: &Checked,
        options: &RunOptions,
    ) -> Result<Done, Error> {
        self.work_as(client, intent, options, Some(checked.clone()))
            .await
    }

    async fn work_as(
        &self,
        client: &Client,
        intent: i64,
        options: &RunOptions,
        checked: Option<Checked>,
    ) -> Result<Done, Error> {
        match self
            .claim_and(client, intent, options, Goal::Result, checked)
            .await?
        {
            Reached::Done(done) => Ok(done),
            Reached::Job(row) => Err(Error::Conflict(format!(
                "intent #{} stopped at {}",
                row.intent, row.state
            ))),
        }
    }

    /// Records `intent` and works its row only until the provider has
    /// answered with a job id (`--no-wait`): the row is left for
    /// [`Ledger::work`] or [`Ledger::resume`] to finish.
    ///
    /// # Errors
    ///
    /// As [`Ledger::run`].
    pub async fn send(
        &self,
        client: &Client,
        intent: Intent,
        options: &RunOptions,
    ) -> Result<Record, Error> {
        let row = self.record(client, &intent).await?;
        match self
            .claim_and(client, row.intent, options, Goal::Job, Some(intent.checked))
            .await?
        {
            Reached::Job(row) => Ok(row),
            Reached::Done(done) => Ok(done.record),
        }
    }

    /// Claims row `intent` and works it towards `goal`. `checked` is the
    /// request as this run checked it, when it has: sent as it is if the
    /// row is still to send, so that one run validates once.
    async fn claim_and(
        &self,
        client: &Client,
        intent: i64,
        options: &RunOptions,
        goal: Goal,
        mut checked: Option<Checked>,
    ) -> Result<Reached, Error> {
        let started = Instant::now();
        let mut announced = false;
        let mut dead: Option<String> = None;
        let token = self.claim_token();
        loop {
            let now = now_ms();
            let claim = self
                .inner
                .store
                .claim(
                    intent,
                    &token,
                    dead.as_deref(),
                    now,
                    now + millis(self.inner.lease),
                )
                .await?;
            match claim {
                None => return Err(Error::Conflict(format!("no intent #{intent}"))),
                Some(Claim::Taken(row)) => {
                    return self
                        .work_claimed(client, row, &token, options, goal, checked.take(), started)
                        .await;
                }
                Some(Claim::Held(row)) => {
                    let owner = row.claim_owner.clone().unwrap_or_default();
                    // A process of this machine that is gone holds nothing:
                    // no need to wait for its lease to lapse.
                    if dead.as_deref() != Some(owner.as_str()) && crate::owner_is_dead(&owner) {
                        dead = Some(owner);
                        continue;
                    }
                    if !options.wait_for_others || started.elapsed() >= options.timeout {
                        return Err(Error::Busy { intent, owner });
                    }
                    if !announced {
                        options.emit(Event::WaitingForOther { intent, owner });
                        announced = true;
                    }
                    // Each look takes the write lock: look about once a
                    // second, out of step with other waiters.
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(500..1500))).await;
                }
            }
        }
    }
}

impl Ledger {
    /// Works `row`, claimed by `token`, towards `goal` (the timeout counts
    /// from `started`), renewing the claim meanwhile and letting it go at
    /// the end; in a span naming the row, whose events say what it went
    /// through.
    #[allow(clippy::too_many_arguments)] // the pipeline's own plumbing
    #[tracing::instrument(
        name = "intent",
        skip_all,
        fields(
            intent = row.intent,
            attempt = row.attempt,
            provider = row.provider.as_str(),
            state = row.state.as_str(),
        )
    )]
    pub(crate) async fn work_claimed(
        &self,
        client: &Client,
        row: Record,
        token: &str,
        options: &RunOptions,
        goal: Goal,
        checked: Option<Checked>,
        started: Instant,
    ) -> Result<Reached, Error> {
        let held = Held::new(self, row.intent, token);
        if !serves(client, &row) {
            held.release().await;
            return Err(Error::Conflict(format!(
                "intent #{} was recorded for {}{}, not for {}{}: work it with that provider",
                row.intent,
                row.provider,
                row.base_url
                    .as_deref()
                    .map(|url| format!(" at {url}"))
                    .unwrap_or_default(),
                client.provider().name(),
                client
                    .provider()
                    .base_url()
                    .map(|url| format!(" at {url}"))
                    .unwrap_or_default(),
            )));
        }
        let let_go_written = AtomicBool::new(false);
        let worker = Worker {
            ledger: self,
            client,
            options,
            started,
            token,
            checked,
            pending: None,
            created_now: false,
            let_go_written: &let_go_written,
        };
        let result = worker.work(row, goal).await;
        if let_go_written.load(Ordering::Relaxed) {
            held.forget();
        } else {
            held.release().await;
        }
        result
    }
}

/// A claim held while a row is worked: renewed until dropped, then let go,
/// also when the run is dropped midway.
struct Held<'a> {
    ledger: &'a Ledger,
    intent: i64,
    token: &'a str,
    released: bool,
}

impl<'a> Held<'a> {
    fn new(ledger: &'a Ledger, intent: i64, token: &'a str) -> Self {
        ledger.hold(token);
        Held {
            ledger,
            intent,
            token,
            released: false,
        }
    }

    /// Lets go now, waiting for the store: a process about to exit leaves
    /// no claim behind.
    async fn release(mut self) {
        self.released = true;
        self.ledger.stop_renewing(self.token);
        // A failed release only delays others until the lease lapses.
        let _ = self
            .ledger
            .inner
            .store
            .release(self.intent, self.token)
            .await;
    }
}

impl Held<'_> {
    /// The store let the claim go already: only stop renewing it.
    fn forget(mut self) {
        self.released = true;
        self.ledger.stop_renewing(self.token);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.released {
            self.ledger.let_go(self.intent, self.token);
        }
    }
}

/// How far a claimed row is worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Goal {
    /// To its verified result.
    Result,
    /// Until its job id is known.
    Job,
}

/// Where a worked row got to.
pub(crate) enum Reached {
    Done(Done),
    Job(Record),
}

/// One claimed row being worked.
struct Worker<'a> {
    ledger: &'a Ledger,
    client: &'a Client,
    options: &'a RunOptions,
    started: Instant,
    /// The claim this worker holds.
    token: &'a str,
    /// The request as this run checked it, for the row it recorded.
    checked: Option<Checked>,
    /// A job id the ledger could not write yet (a full disk): written with
    /// the next change that gets through.
    pending: Option<(JobHandle, StoreError)>,
    /// Whether this run created the job (its first status check comes
    /// after the usual delay, not at once).
    created_now: bool,
    /// Set once a write let the claim go with it: nothing left to release.
    let_go_written: &'a AtomicBool,
}

impl Worker<'_> {
    fn owner(&self) -> &str {
        self.token
    }

    /// Where this process writes `row`'s result, when the row names a
    /// file: that file, or its name in [`RunOptions::results_in`].
    fn output_of(&self, row: &Record) -> Option<PathBuf> {
        let path = row.output.as_ref()?;
        Some(match (&self.options.results_in, path.file_name()) {
            (Some(dir), Some(name)) => dir.join(name),
            _ => path.clone(),
        })
    }

    fn remaining(&self) -> Duration {
        self.options.timeout.saturating_sub(self.started.elapsed())
    }

    /// Writes `change` as the claim holder.
    async fn write(&mut self, row: &Record, change: Change) -> Result<Record, Error> {
        let mut change = change;
        if let Some((job, _)) = &self.pending {
            change.job_id = Some(job.id.clone());
        }
        match self
            .ledger
            .inner
            .store
            .update(row.intent, Guard::Owner(self.owner()), &change, now_ms())
            .await
        {
            Ok(Some(written)) => {
                self.pending = None;
                Ok(written)
            }
            Ok(None) => Err(Error::Conflict(format!(
                "intent #{}: this process's claim lapsed and another process took the row over",
                row.intent
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn work(mut self, row: Record, goal: Goal) -> Result<Reached, Error> {
        let intent = row.intent;
        let result = self.advance(row, goal).await;
        let Some((job, source)) = self.pending.take() else {
            return result;
        };
        // No write got through since the create answered, so the row still
        // says `sending`: one last try, as the claim holder, then as anyone
        // (the claim may have lapsed while the create was in flight).
        let change = Change {
            job_id: Some(job.id.clone()),
            ..Change::state(State::Submitted)
        };
        let store = &self.ledger.inner.store;
        let written = match store
            .update(intent, Guard::Owner(self.token), &change, now_ms())
            .await
        {
            Ok(None) => store.update(intent, Guard::Orphan, &change, now_ms()).await,
            other => other,
        };
        match (written, result) {
            (Ok(Some(_)), Ok(Reached::Job(mut row))) => {
                row.job_id = Some(job.id.clone());
                Ok(Reached::Job(row))
            }
            (Ok(Some(_)), Ok(done)) => Ok(done),
            (Ok(Some(_)), Err(Error::Conflict(_))) => Err(Error::Conflict(format!(
                "job {job} was created and is recorded on intent #{intent}, but another process \
                 took the row over; it finishes the job, or `kling resume` does"
            ))),
            (Ok(Some(_)), Err(e)) => Err(e),
            (Ok(None), _) => Err(Error::Unrecorded {
                job,
                intent,
                source,
            }),
            (Err(source), _) => Err(Error::Unrecorded {
                job,
                intent,
                source,
            }),
        }
    }

    async fn advance(&mut self, row: Record, goal: Goal) -> Result<Reached, Error> {
        self.options.emit(Event::Started {
            intent: row.intent,
            state: row.state,
        });
        let mut row = row;
        loop {
            row = match row.state {
                State::Intent => self.send(row).await?,
                State::NotSent if row.resend => self.send(row).await?,
                State::NotSent => {
                    return Err(Error::Refused {
                        intent: row.intent,
                        reason: row.detail.clone().unwrap_or_default(),
                    });
                }
                // The process that was sending it died before the answer
                // was recorded: the create may have left.
                State::Sending => {
                    let change = Change::state(State::MayExist).detail(
                        "the process sending it stopped before the provider's answer was recorded",
                    );
                    self.write(&row, change).await?
                }
                State::MayExist => self.reconcile(row).await?,
                State::Submitted | State::Queued | State::Running | State::Succeeded => {
                    if goal == Goal::Job {
                        return Ok(Reached::Job(row));
                    }
                    return self.follow(row).await.map(Reached::Done);
                }
                State::Downloaded => return Ok(Reached::Done(done(row, None))),
                State::Failed | State::Cancelled => {
                    let ended = if row.state == State::Failed {
                        kling::JobState::Failed {
                            reason: row.detail.clone().unwrap_or_default(),
                            refunded: None,
                        }
                    } else {
                        kling::JobState::Cancelled
                    };
                    let job = job_of(&row)?;
                    return Err(kling::Error::job_ended(&job, &ended).map_or_else(
                        || Error::Conflict(format!("{job} has not ended")),
                        Into::into,
                    ));
                }
            };
        }
    }

    /// Uploads, marks `sending`, creates once, records the answer.
    async fn send(&mut self, row: Record) -> Result<Record, Error> {
        // The output may have changed since the intent was recorded (a
        // resumed intent, another run with the same --out).
        if let Some(path) = self.output_of(&row)
            && let Err(e) = crate::check_output(&path, row.overwrite)
        {
            let change = Change {
                resend: Some(true),
                ..Change::state(State::NotSent).detail(e.to_string())
            };
            self.write(&row, change).await?;
            return Err(e);
        }
        let request = row.request()?;
        let checked = match self.checked.take() {
            Some(checked) if recorded(checked.request()) == row.request => Ok(checked),
            _ => self.client.validate(&request),
        };
        let uploaded = match checked {
            Ok(checked) => self.client.upload_inputs(&checked).await,
            Err(e) => Err(e),
        };
        let sent = match uploaded {
            Ok(sent) => sent,
            Err(e) => {
                // An upload creates no job: this is never `may_exist`.
                let resend =
                    !e.is_invalid_request() && !matches!(e, kling::Error::Unsupported { .. });
                let change = Change {
                    resend: Some(resend),
                    ..Change::state(State::NotSent).detail(e.to_string())
                };
                self.write(&row, change).await?;
                return Err(e.into());
            }
        };
        // The line between "safe to send again" and "may be paid for".
        let change = Change {
            sent_request: Some(crate::canonical(&uploads_redacted(
                &request,
                sent.request(),
            ))),
            sending_at: Some(now_ms()),
            ..Change::state(State::Sending)
        };
        let row = self.write(&row, change).await?;
        crate::crash_point("sending");
        match self.client.create(&sent).await {
            Ok(job) => {
                crate::crash_point("created");
                self.options.emit(Event::Submitted {
                    intent: row.intent,
                    job: job.clone(),
                });
                self.submitted(&row, &job).await
            }
            Err(e) if e.may_have_been_sent() => {
                let change = Change::state(State::MayExist).detail(e.to_string());
                // Whatever happens next, the error says the job may exist:
                // the row says `sending` or `may_exist`, never re-sent.
                let Ok(row) = self.write(&row, change).await else {
                    return Err(e.into());
                };
                // Where the provider keeps a record, look at once.
                match self.reconcile(row).await {
                    Ok(found) => Ok(found),
                    Err(_) => Err(e.into()),
                }
            }
            Err(e) => {
                // Refused before any job existed. A refusal of the request
                // itself is final; an unusable key, a rate limit or a
                // connection that never opened may be sent again.
                let resend = matches!(
                    e,
                    kling::Error::Auth { .. }
                        | kling::Error::RateLimited { .. }
                        | kling::Error::Transport { .. }
                        | kling::Error::Timeout { .. }
                );
                let change = Change {
                    resend: Some(resend),
                    ..Change::state(State::NotSent).detail(e.to_string())
                };
                self.write(&row, change).await?;
                Err(e.into())
            }
        }
    }

    /// Records the job id, or keeps it to record later when the ledger
    /// cannot be written.
    async fn submitted(&mut self, row: &Record, job: &JobHandle) -> Result<Record, Error> {
        self.created_now = true;
        let change = charged(Change::state(State::Submitted), job.charge);
        self.record_job(row, job, change).await
    }

    /// Writes a job's id (with `change`), or keeps it to write later when
    /// the ledger cannot be written: the id of a paid job is never dropped.
    async fn record_job(
        &mut self,
        row: &Record,
        job: &JobHandle,
        change: Change,
    ) -> Result<Record, Error> {
        let change = Change {
            job_id: Some(job.id.clone()),
            ..change
        };
        match self.write(row, change).await {
            Ok(row) => {
                crate::crash_point("submitted");
                Ok(row)
            }
            Err(Error::Store(e)) if !e.conflict => {
                self.pending = Some((job.clone(), e));
                let mut row = row.clone();
                row.job_id = Some(job.id.clone());
                row.state = State::Submitted;
                Ok(row)
            }
            Err(e) => {
                // The claim lapsed (or the id is on another row): keep the
                // id for the last attempt on the way out.
                self.pending = Some((
                    job.clone(),
                    StoreError {
                        location: self.ledger.location(),
                        message: e.to_string(),
                        conflict: true,
                    },
                ));
                Err(e)
            }
        }
    }

    /// Looks a lost create up at the provider, and adopts what it finds.
    async fn reconcile(&mut self, row: Record) -> Result<Record, Error> {
        let may_exist = |reason: String| Error::MayExist {
            intent: row.intent,
            provider: row.provider.clone(),
            reason,
        };
        let by_hand = format!(
            "find the job in {}'s dashboard and run `kling jobs attach {} {}:JOB-ID`, or \
             `kling jobs forget {}` if it has none",
            row.provider, row.intent, row.provider, row.intent
        );
        let (Some(sent), Some(sending_at)) = (row.sent_request()?, row.sending_at) else {
            return Err(may_exist(format!(
                "what was sent is not recorded (a row from an older journal); {by_hand}"
            )));
        };
        let known = self.ledger.inner.store.job_ids(&row.provider).await?;
        let sent_at =
            std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(sending_at).unwrap_or(0));
        let sent = match self.client.validate(&sent) {
            Ok(sent) => sent,
            Err(e) => {
                return Err(may_exist(format!(
                    "what was sent no longer passes the checks ({e}); {by_hand}"
                )));
            }
        };
        let lost = kling::provider::LostCreate::new(&sent, sent_at, &known);
        match self.client.find_lost(&lost).await {
            Ok(kling::provider::Found::Job(job)) => {
                tracing::info!(job = job.id.as_str(), "a lost create found again");
                self.options.emit(Event::Reconciled {
                    intent: row.intent,
                    job: job.clone(),
                });
                let change = Change::state(State::Submitted).detail(format!(
                    "found again at {} after its create's answer was lost",
                    row.provider
                ));
                self.record_job(&row, &job, change).await
            }
            Ok(kling::provider::Found::NotFound) => Err(may_exist(format!(
                "its create may have reached {} without an answer, and {} lists no matching job \
                 yet; `kling resume` looks again, or {by_hand}",
                row.provider, row.provider
            ))),
            Ok(_) => Err(may_exist(format!(
                "its create may have reached {} without an answer; {} publishes no way to look \
                 it up: {by_hand}",
                row.provider, row.provider
            ))),
            Err(e) => Err(may_exist(format!(
                "looking it up at {} failed ({e}); `kling resume` looks again, or {by_hand}",
                row.provider
            ))),
        }
    }

    /// Asks the provider what it charged for an ended job, where it keeps a
    /// record (Oxen) and nothing was reported on the way; a failure to ask
    /// leaves the charge unknown, never the job.
    async fn record_charge(&mut self, row: Record, job: &JobHandle) -> Record {
        match self.ask_charge(&row, job).await {
            Some(charge) => {
                let update = charged(Change::default(), Some(charge));
                self.write(&row, update).await.unwrap_or(row)
            }
            None => row,
        }
    }

    /// What the provider says it charged for `job`, when the row records
    /// no charge yet and the provider keeps a record.
    async fn ask_charge(&self, row: &Record, job: &JobHandle) -> Option<kling::Charge> {
        if row.charged_usd.is_some() || row.charged_credits_micros.is_some() {
            return None;
        }
        self.client.charge(job).await.ok().flatten()
    }

    /// Waits for the job, records each status, downloads and verifies the
    /// result.
    async fn follow(&mut self, row: Record) -> Result<Done, Error> {
        let job = job_of(&row)?;
        let client = self.client;
        let mut options = WaitOptions::default().deadline(self.remaining());
        if !self.created_now {
            // A job from an earlier run may have ended long ago: look now.
            let mut policy = options.policy;
            policy.first_check = Duration::ZERO;
            options = options.policy(policy);
        }
        // Each status with when the provider last called back, read as
        // the wait reports it: the receiver forgets the job once it ends.
        let (sender, mut receiver) =
            mpsc::unbounded_channel::<(JobStatus, Option<std::time::SystemTime>)>();
        let waited_job = &job;
        let wait = client.wait_with(&job, &options, move |status| {
            let _ = sender.send((status.clone(), client.callback_arrived(waited_job)));
        });
        let intent = row.intent;
        let observer = self.options.clone();
        let mut last = row.state;
        let mut last_charge = None;
        let mut current = row;
        let mut write_error = None;
        let record = async {
            while let Some((status, called_back)) = receiver.recv().await {
                let state = State::of(&status.state);
                let called_back = called_back
                    .map(crate::epoch_ms)
                    .filter(|at| current.callback_at != Some(*at));
                observer.emit(Event::Status {
                    intent,
                    status: status.clone(),
                });
                let news = status.charge.is_some() && status.charge != last_charge;
                if state != last || news || called_back.is_some() || self.pending.is_some() {
                    let mut change = charged(Change::state(state), status.charge);
                    change.callback_at = called_back;
                    last_charge = status.charge;
                    if let kling::JobState::Failed { reason, .. } = &status.state {
                        change.detail = Some(reason.clone());
                    }
                    match self.write(&current, change).await {
                        Ok(row) => current = row,
                        Err(e) => write_error = Some(e),
                    }
                    last = state;
                }
            }
        };
        let (waited, ()) = tokio::join!(wait, record);
        if let Some(e) = write_error.filter(|e| matches!(e, Error::Conflict(_))) {
            return Err(e);
        }
        if let Err(kling::Error::JobFailed { .. }) = &waited {
            current = self.record_charge(current, &job).await;
        }
        let status = waited?;
        crate::crash_point("succeeded");
        // Recorded with the result: one write fewer. A crash before it
        // leaves the charge for whoever downloads the result to ask again.
        let charge = self.ask_charge(&current, &job).await;
        self.download(current, &job, status, charge).await
    }

    /// Downloads and verifies the result of a succeeded job, and records it.
    async fn download(
        &mut self,
        current: Record,
        job: &JobHandle,
        status: JobStatus,
        reported: Option<kling::Charge>,
    ) -> Result<Done, Error> {
        let (client, intent) = (self.client, current.intent);
        let dest = self.output_of(&current).unwrap_or_else(|| {
            let name = format!("{}.mp4", file_name(&job.id));
            match (&self.options.results_in, &current.output_dir) {
                (Some(dir), _) | (None, Some(dir)) => dir.join(name),
                (None, None) => PathBuf::from(name),
            }
        });
        // A file already there that this row may not replace: this row
        // wrote it before a crash, or somebody else did. Download beside
        // it and keep the result only when it is that same file.
        let existing = !current.overwrite && std::fs::symlink_metadata(&dest).is_ok();
        let target = if existing {
            let mut name = dest.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".{}.kling-check", current.intent));
            dest.with_file_name(name)
        } else {
            dest.clone()
        };
        let options = self.options;
        let progress = |written, total| {
            options.emit(Event::Downloading {
                intent,
                written,
                total,
            });
        };
        let downloaded = tokio::time::timeout(
            self.remaining(),
            client.download_with_options(
                job,
                &status,
                &target,
                &client.download_options().deadline(self.remaining()),
                &progress,
            ),
        )
        .await
        .map_err(|_| kling::Error::Timeout {
            job: Some(Box::new(job.clone())),
            after: self.options.timeout,
            delivery: kling::Delivery::NotSent,
        })?;
        let size = downloaded?;
        if existing {
            let same = same_contents(&target, &dest);
            let _ = std::fs::remove_file(&target);
            if !same {
                return Err(Error::Output {
                    path: dest,
                    problem: format!(
                        "a file this job did not write is there; the result stays at the \
                         provider: `kling wait {job} --out OTHER.mp4` fetches it, or allow \
                         overwriting (--overwrite)"
                    ),
                });
            }
        }
        crate::crash_point("downloaded");
        // The claim is let go in the same write: the row is done.
        let change = Change {
            output: Some(dest.display().to_string()),
            host: Some(self.ledger.inner.host.clone()),
            release: true,
            ..charged(Change::state(State::Downloaded), reported)
        };
        let row = self.write(&current, change).await?;
        self.let_go_written.store(true, Ordering::Relaxed);
        Ok(Done {
            output: dest,
            size,
            status: Some(status),
            record: row,
        })
    }
}

/// Whether `client` may work `row`: its provider, at its address (a row
/// recorded without one is any address's).
pub(crate) fn serves(client: &Client, row: &Record) -> bool {
    let provider = client.provider();
    row.provider == provider.name()
        && (row.base_url.is_none() || row.base_url.as_deref() == provider.base_url())
}

/// What identifies `intent` on `client`'s provider: its key, or its request
/// and output; refused when the request was checked for another provider.
pub(crate) fn identity_of(client: &Client, intent: &Intent) -> Result<String, Error> {
    let provider = client.provider();
    provider.capabilities().accept(&intent.checked)?;
    let base_url = provider.base_url();
    let name = if let Some(key) = &intent.key {
        format!("key\n{key}")
    } else {
        let (output, output_dir) = intent.output.recorded();
        format!(
            "request\n{}\n{}",
            recorded(intent.checked.request()),
            output.or(output_dir).unwrap_or_default()
        )
    };
    Ok(identity(provider.name(), base_url, &name))
}

/// `change` with what the provider reported it charged, if it did.
fn charged(mut change: Change, reported: Option<kling::Charge>) -> Change {
    match reported {
        Some(kling::Charge::Usd(usd)) => change.charged_usd_micros = Some(usd.micros()),
        Some(kling::Charge::Credits(credits)) => {
            change.charged_credits_micros = Some(credits.millionths());
        }
        _ => {}
    }
    change
}

/// Whether two files hold the same bytes, read in blocks.
fn same_contents(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::io::Read as _;
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    if fa.metadata().map(|m| m.len()).ok() != fb.metadata().map(|m| m.len()).ok() {
        return false;
    }
    let (mut ra, mut rb) = (std::io::BufReader::new(fa), std::io::BufReader::new(fb));
    let (mut ba, mut bb) = (vec![0; 64 * 1024], vec![0; 64 * 1024]);
    loop {
        let Ok(n) = ra.read(&mut ba) else {
            return false;
        };
        if n == 0 {
            return true;
        }
        if rb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

fn job_of(row: &Record) -> Result<JobHandle, Error> {
    row.job().ok_or_else(|| {
        Error::Conflict(format!(
            "intent #{} is {} but records no job id",
            row.intent, row.state
        ))
    })
}

fn done(row: Record, status: Option<JobStatus>) -> Done {
    let output = row.output.clone().unwrap_or_default();
    let size = std::fs::metadata(&output).map_or(0, |m| m.len());
    Done {
        record: row,
        output,
        size,
        status,
    }
}

/// How many characters of a job id a file name keeps before its hash.
const NAME_PREFIX: usize = 47;

/// A job id as a file name (without its extension), safe on every file
/// system: letters, digits, `-` and `_` kept, anything else `_`. An id kept
/// whole as it is (at most 64 such characters, not starting with `-`, not
/// a name Windows reserves) is its own name; any other keeps a safe prefix
/// of at most 47 characters and adds `-` and a hash of the whole id, so that
/// two ids never share a name and no name passes 64 bytes.
pub(crate) fn file_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let whole = safe == id
        && !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('-')
        && !reserved_on_windows(id);
    if whole {
        return safe;
    }
    let hash = crate::record::identity("file", None, id);
    let prefix: String = safe
        .trim_start_matches('-')
        .chars()
        .take(NAME_PREFIX)
        .collect();
    if prefix.is_empty() {
        format!("job-{}", &hash[..16])
    } else {
        format!("{prefix}-{}", &hash[..16])
    }
}

/// Names Windows gives to devices, with any extension: `CON`, `NUL.mp4`.
fn reserved_on_windows(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit())
}

/// `sent` as the ledger keeps it: each input that was local in `recorded`
/// and went up through the uploader shows as where it went, without the
/// query (a presigned URL's signature is a credential, and a fresh one is
/// made if the row is sent again).
fn uploads_redacted(recorded: &kling::Request, sent: &kling::Request) -> kling::Request {
    let local: Vec<bool> = recorded
        .media()
        .iter()
        .map(|input| !matches!(input.media, kling::Media::Url(_)))
        .collect();
    let mut at = 0;
    sent.clone().map_media(|_, media| {
        let uploaded = local.get(at).copied().unwrap_or(false);
        at += 1;
        match media {
            kling::Media::Url(url) if uploaded => kling::Media::Url(kling::redacted(&url)),
            media => media,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use kling::SecretString;
    use kling::shortapi::ShortApi;
    use kling_sandbox::{Config, Sandbox};

    use super::*;
    use crate::store::{Store, StoreResult};

    /// What every name made from a job id must be.
    fn assert_safe(id: &str, name: &str) {
        assert!(!name.is_empty() && name.len() <= 64, "{id:?}: {name:?}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id:?}: {name:?}"
        );
        assert!(!name.starts_with('-'), "{id:?}: {name:?}");
        assert!(!reserved_on_windows(name), "{id:?}: {name:?}");
    }

    #[test]
    fn job_ids_become_bounded_safe_file_names() {
        for (id, expected) in [
            ("abc-123_X", "abc-123_X"),
            ("a/b", "a_b-"),
            ("a\\b", "a_b-"),
            ("C:x", "C_x-"),
            ("a\0b\nc\u{1b}[2J", "a_b_c__2J-"),
            ("CON", "CON-"),
            ("nul", "nul-"),
            ("Com7", "Com7-"),
            ("lpt1", "lpt1-"),
            ("-rf", "rf-"),
            ("", "job-"),
            ("..", "__-"),
            ("/", "_-"),
            ("ab:o1-edit", "ab_o1-edit-"),
        ] {
            let name = file_name(id);
            assert_safe(id, &name);
            if expected.ends_with('-') {
                assert!(name.starts_with(expected), "{id:?}: {name:?}");
                assert_eq!(name.len(), expected.len() + 16, "{id:?}: {name:?}");
            } else {
                assert_eq!(name, expected);
            }
        }
        let long = "x".repeat(10 * 1024);
        let name = file_name(&long);
        assert_safe(&long, &name);
        assert!(name.starts_with(&"x".repeat(NAME_PREFIX)), "{name}");
        // Ids that differ only where characters were replaced, or past the
        // prefix, get different names.
        assert_ne!(file_name("a/b"), file_name("a:b"));
        assert_ne!(file_name(&long), file_name(&(long.clone() + "y")));
        assert_ne!(file_name("CON"), file_name("con"));
    }

    #[test]
    fn any_job_id_gives_a_safe_distinct_file_name() {
        // A property over seeded random ids: every name is safe, and
        // distinct ids give distinct names.
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet: Vec<char> = "aZ09-_./\\:*?\"<>|\0\n\r\t\u{1b}\u{7f} éüЖ💥CONULPT1"
            .chars()
            .collect();
        let mut seen = std::collections::HashMap::new();
        for _ in 0..5000 {
            let len = match rng.u8(..) {
                0..10 => rng.usize(3000..12_000),
                _ => rng.usize(0..80),
            };
            let id: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let name = file_name(&id);
            assert_safe(&id, &name);
            if let Some(other) = seen.insert(name.clone(), id.clone()) {
                assert_eq!(other, id, "two ids share the name {name}");
            }
        }
    }

    /// A ledger whose disk is full for writes of a job id, `failures` times.
    #[derive(Debug)]
    struct FullDisk {
        inner: crate::sqlite::Sqlite,
        failures: AtomicU32,
    }

    #[async_trait]
    impl Store for FullDisk {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn statements(&self) -> u64 {
            self.inner.statements()
        }
        async fn insert(&self, new: NewRecord, now: i64) -> StoreResult<(Record, bool)> {
            self.inner.insert(new, now).await
        }
        async fn insert_many(&self, new: &[NewRecord], now: i64) -> StoreResult<()> {
            self.inner.insert_many(new, now).await
        }
        async fn get(&self, intent: i64) -> StoreResult<Option<Record>> {
            self.inner.get(intent).await
        }
        async fn get_many(&self, intents: &[i64]) -> StoreResult<Vec<Record>> {
            self.inner.get_many(intents).await
        }
        async fn latest_many(&self, identities: &[String]) -> StoreResult<Vec<Record>> {
            self.inner.latest_many(identities).await
        }
        async fn claim_next(
            &self,
            queue: &crate::store::Queue<'_>,
            owner: &str,
            now_ms: i64,
            until_ms: i64,
        ) -> StoreResult<Option<Record>> {
            self.inner.claim_next(queue, owner, now_ms, until_ms).await
        }
        async fn left(
            &self,
            queue: &crate::store::Queue<'_>,
            now_ms: i64,
        ) -> StoreResult<crate::store::Left> {
            self.inner.left(queue, now_ms).await
        }
        async fn latest(&self, identity: &str) -> StoreResult<Option<Record>> {
            self.inner.latest(identity).await
        }
        async fn by_job(&self, provider: &str, job_id: &str) -> StoreResult<Option<Record>> {
            self.inner.by_job(provider, job_id).await
        }
        async fn list(&self, filter: &Filter) -> StoreResult<Vec<Record>> {
            self.inner.list(filter).await
        }
        async fn past_charges(
            &self,
            provider: &str,
            model: &str,
        ) -> StoreResult<crate::store::PastCharges> {
            self.inner.past_charges(provider, model).await
        }
        async fn job_ids(&self, provider: &str) -> StoreResult<Vec<String>> {
            self.inner.job_ids(provider).await
        }
        async fn claim(
            &self,
            intent: i64,
            owner: &str,
            dead: Option<&str>,
            now_ms: i64,
            until_ms: i64,
        ) -> StoreResult<Option<Claim>> {
            self.inner
                .claim(intent, owner, dead, now_ms, until_ms)
                .await
        }
        async fn renew(&self, tokens: &[String], until_ms: i64) -> StoreResult<u64> {
            self.inner.renew(tokens, until_ms).await
        }
        async fn release(&self, intent: i64, owner: &str) -> StoreResult<()> {
            self.inner.release(intent, owner).await
        }
        async fn update(
            &self,
            intent: i64,
            guard: Guard<'_>,
            change: &Change,
            now_ms: i64,
        ) -> StoreResult<Option<Record>> {
            let full = change.job_id.is_some()
                && self
                    .failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
            if full {
                return Err(StoreError {
                    location: self.location(),
                    message: "database or disk is full".to_owned(),
                    conflict: false,
                });
            }
            self.inner.update(intent, guard, change, now_ms).await
        }
    }

    async fn run_with_full_disk(failures: u32) -> (Result<Done, Error>, Ledger, Sandbox) {
        let sandbox = Sandbox::start(Config::default().job_duration(Duration::from_millis(300)))
            .await
            .unwrap();
        let client = Client::new(
            ShortApi::with_base_url(
                &sandbox.url(kling_sandbox::Provider::ShortApi),
                SecretString::from("k"),
            )
            .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap().keep();
        let store = FullDisk {
            inner: crate::sqlite::Sqlite::open(&dir.join("l.sqlite3")).unwrap(),
            failures: AtomicU32::new(failures),
        };
        let ledger = Ledger::with_store(Arc::new(store), crate::DEFAULT_LEASE);
        let request = kling::Request::from(kling::EditRequest::new(
            kling::Media::url("https://media.example/in.mp4"),
            "snow",
        ));
        let result = ledger
            .run(
                &client,
                Intent::new(client.validate(&request).unwrap(), dir.join("o.mp4")),
                &RunOptions::default(),
            )
            .await;
        (result, ledger, sandbox)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_id_that_cannot_be_written_is_written_with_the_next_change() {
        let (result, ledger, sandbox) = run_with_full_disk(1).await;
        let done = result.unwrap();
        assert!(done.record.job_id.is_some());
        let row = &ledger.jobs(&Filter::all()).await.unwrap()[0];
        assert_eq!(row.state, State::Downloaded);
        assert_eq!(row.job_id, done.record.job_id);
        assert_eq!(sandbox.stats()["shortapi"].creates, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_id_that_never_gets_written_is_named_in_the_error() {
        let (result, ledger, sandbox) = run_with_full_disk(u32::MAX).await;
        let error = result.unwrap_err();
        let Error::Unrecorded { job, intent, .. } = &error else {
            panic!("{error}");
        };
        assert!(error.to_string().contains(&job.id), "{error}");
        assert!(error.to_string().contains("kling jobs attach"), "{error}");
        assert_eq!(error.job(), Some(job));
        let row = ledger.get(*intent).await.unwrap().unwrap();
        assert_eq!(row.job_id, None);
        assert_eq!(sandbox.stats()["shortapi"].creates, 1);
    }
}
