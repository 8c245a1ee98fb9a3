//! A batch worked by any number of processes, on one machine or many: each
//! records every line (existing rows are found, not written again), then
//! takes the next line nobody holds, works it, and takes the next, until
//! nothing is left. A line is taken in one statement (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, the write lock on SQLite), so workers starting
//! together never queue behind one row, and a line already done costs a
//! worker nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kling::{Checked, Client};

use crate::pipeline::{Goal, Reached, identity_of};
use crate::store::{CHUNK, Queue};
use crate::{Done, Error, Intent, Ledger, Record, RunOptions, millis, now_ms};

/// The longest a worker waits before looking again while every line left
/// is held by others: a line may end (or its holder die) at any moment.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// The lines of one batch in a ledger, as one process works them.
///
/// Every process running the same batch names it the same way (`kling
/// batch` uses the file's name and a hash of its lines); the lines'
/// identities are what make two processes' rows one. A worker takes only
/// its provider's rows, at its address.
///
/// ```no_run
/// use kling::{EditRequest, Media, Request};
/// use kling_ledger::{Intent, Ledger, Next, RunOptions};
///
/// # async fn run(client: kling::Client) -> Result<(), kling_ledger::Error> {
/// let ledger = Ledger::open("jobs.sqlite3")?;
/// let batch = ledger.batch("night.jsonl");
/// let request = Request::from(EditRequest::new(
///     Media::url("https://example.com/street.mp4"),
///     "Make it snow on @Video1",
/// ));
/// let intent = Intent::new(client.validate(&request)?, "snowy.mp4").key("night.jsonl 1");
/// batch.record(&client, vec![(1, intent)]).await?;
/// loop {
///     match batch.next(&client, &RunOptions::default()).await? {
///         Next::Worked { record, result } => println!("#{}: {:?}", record.intent, result.is_ok()),
///         Next::Wait(pause) => tokio::time::sleep(pause).await,
///         Next::Finished => break,
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Batch {
    ledger: Ledger,
    name: String,
    /// The requests this process checked, by row: sent as they are.
    checked: Mutex<HashMap<i64, Checked>>,
    /// Rows this process worked that ended without a result: it does not
    /// take them again (another process may).
    tried: Mutex<HashSet<i64>>,
    /// When each line refused by a rate limit was first refused.
    rate_limited: Mutex<HashMap<i64, Instant>>,
    /// How many times a line was given back to this process's queue.
    returned: AtomicU64,
    /// While every line left is held by others: until when nothing will be
    /// free, as one task of this process found; the others wait without
    /// asking the database.
    quiet: Mutex<Quiet>,
}

/// What the last look at a batch with nothing free found.
#[derive(Clone, Copy, Debug, Default)]
enum Quiet {
    /// Look when asked.
    #[default]
    Look,
    /// Nothing is free before then.
    Until(Instant),
    /// Nothing is left for this process.
    Finished,
}

/// What [`Batch::next`] did.
#[derive(Debug)]
#[non_exhaustive]
// One per line worked, moved once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// This process took a line and worked it.
    Worked {
        /// The row as it was taken.
        record: Record,
        /// How it ended.
        result: Result<Done, Error>,
    },
    /// A rate limit refused the line this process took, before anything
    /// was created: it is back in the queue, for this process too. Slow
    /// down (for `retry_after` when the provider said how long) and go on.
    /// A line refused for longer than the run's timeout ends
    /// [`Next::Worked`] with the rate limit as its error.
    GivenBack {
        /// The row as it was taken.
        record: Record,
        /// How long the provider asked to wait, if it said.
        retry_after: Option<Duration>,
        /// Whether the limit was on jobs at once (fewer workers help) or
        /// on requests (waiting does).
        concurrency: bool,
    },
    /// Every line left is held by another process: look again after this.
    Wait(Duration),
    /// Nothing is left that this process may take.
    Finished,
}

impl Ledger {
    /// The batch named `name` in this ledger.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let ledger = kling_ledger::Ledger::open(dir.path().join("jobs.sqlite3"))?;
    /// assert_eq!(ledger.batch("night.jsonl").name(), "night.jsonl");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn batch(&self, name: impl Into<String>) -> Batch {
        Batch {
            ledger: self.clone(),
            name: name.into(),
            checked: Mutex::new(HashMap::new()),
            tried: Mutex::new(HashSet::new()),
            rate_limited: Mutex::new(HashMap::new()),
            returned: AtomicU64::new(0),
            quiet: Mutex::new(Quiet::Look),
        }
    }
}

impl Batch {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rows that already record `intents` on `client`'s provider, in
    /// their order (`None` for one not recorded yet), a few hundred a
    /// statement; nothing is written. A batch run again reads its URL
    /// inputs only for lines that may still be created.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the ledger cannot be read.
    pub async fn recorded(
        &self,
        client: &Client,
        intents: &[Intent],
    ) -> Result<Vec<Option<Record>>, Error> {
        let store = &self.ledger.inner.store;
        let mut found = Vec::with_capacity(intents.len());
        for chunk in intents.chunks(CHUNK) {
            let identities: Vec<Option<String>> = chunk
                .iter()
                .map(|intent| identity_of(client, intent).ok())
                .collect();
            let known: Vec<String> = identities.iter().flatten().cloned().collect();
            let rows = by_identity(store.latest_many(&known).await?);
            found.extend(
                identities
                    .into_iter()
                    .map(|identity| identity.and_then(|identity| rows.get(&identity).cloned())),
            );
        }
        Ok(found)
    }

    /// Records `lines` (each a line number and its intent) as lines of
    /// this batch, or finds the rows that record them already, a few
    /// hundred lines a statement. Returns each line's row, or why it was
    /// refused (the output, the budget), in order.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the ledger cannot be read or written.
    pub async fn record(
        &self,
        client: &Client,
        lines: Vec<(i64, Intent)>,
    ) -> Result<Vec<Result<Record, Error>>, Error> {
        let store = &self.ledger.inner.store;
        let mut results = Vec::with_capacity(lines.len());
        let mut lines = lines.into_iter().peekable();
        while lines.peek().is_some() {
            let chunk: Vec<(i64, Intent)> = lines.by_ref().take(CHUNK).collect();
            let identities: Vec<Result<String, Error>> = chunk
                .iter()
                .map(|(_, intent)| identity_of(client, intent))
                .collect();
            let known: Vec<String> = identities.iter().flatten().cloned().collect();
            let mut rows = by_identity(store.latest_many(&known).await?);
            let mut new = Vec::new();
            let mut refused = HashMap::new();
            for ((line, intent), identity) in chunk.iter().zip(&identities) {
                let Ok(identity) = identity else { continue };
                if rows.contains_key(identity) {
                    continue;
                }
                let intent = intent.clone().batch(self.name.clone(), *line);
                match self.ledger.new_row(client, &intent, identity.clone()).await {
                    Ok(row) => new.push(row),
                    Err(e) => {
                        refused.insert(identity.clone(), e);
                    }
                }
            }
            if !new.is_empty() {
                let written: Vec<String> = new.iter().map(|n| n.identity.clone()).collect();
                store.insert_many(&new, now_ms() / 1000).await?;
                rows.extend(by_identity(store.latest_many(&written).await?));
                crate::crash_point("recorded");
            }
            let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
            for ((_, intent), identity) in chunk.into_iter().zip(identities) {
                results.push(identity.and_then(|identity| {
                    if let Some(e) = refused.remove(&identity) {
                        return Err(e);
                    }
                    let row = rows.get(&identity).cloned().ok_or_else(|| {
                        Error::Conflict("a line's row vanished as it was recorded".to_owned())
                    })?;
                    checked.insert(row.intent, intent.checked);
                    Ok(row)
                }));
            }
        }
        Ok(results)
    }

    /// Takes the next line of the batch that has something left to do and
    /// that no live process holds, and works it to its result (sending an
    /// intent that never left, looking up a create that may have reached
    /// the provider, following a job); or says to wait, or that nothing
    /// is left for this process.
    ///
    /// A line that ended here without a result is not taken again by this
    /// [`Batch`], except one refused by a rate limit
    /// ([`Next::GivenBack`]), which is sent again.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the ledger cannot be read; a line's own error
    /// is in [`Next::Worked`].
    pub async fn next(&self, client: &Client, options: &RunOptions) -> Result<Next, Error> {
        let ledger = &self.ledger;
        let store = &ledger.inner.store;
        // Idle tasks of one process share one look at the database.
        let jitter = Duration::from_millis(fastrand::u64(0..300));
        match *self.quiet.lock().unwrap_or_else(PoisonError::into_inner) {
            Quiet::Finished => return Ok(Next::Finished),
            Quiet::Until(until) if until > Instant::now() => {
                return Ok(Next::Wait(until - Instant::now() + jitter));
            }
            _ => {}
        }
        let skip: Vec<i64> = self
            .tried
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        let provider = client.provider();
        let queue = Queue {
            batch: &self.name,
            provider: provider.name(),
            base_url: provider.base_url().unwrap_or_default(),
            skip: &skip,
        };
        let token = ledger.claim_token();
        let now = now_ms();
        // A line given back meanwhile (a rate limit) makes "nothing left"
        // stale: see below.
        let returns = self.returned.load(Ordering::Acquire);
        let claimed = store
            .claim_next(&queue, &token, now, now + millis(ledger.inner.lease))
            .await?;
        let Some(row) = claimed else {
            let left = store.left(&queue, now).await?;
            let mut quiet = self.quiet.lock().unwrap_or_else(PoisonError::into_inner);
            if self.returned.load(Ordering::Acquire) != returns {
                *quiet = Quiet::Look;
                return Ok(Next::Wait(jitter));
            }
            if left.rows == 0 {
                *quiet = Quiet::Finished;
                return Ok(Next::Finished);
            }
            // Held by others: look again soon (a holder may give a line
            // up, or die), and no later than the soonest lease lapses.
            let lapse = left.soonest_lapse.map_or(Duration::ZERO, |at| {
                Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
            });
            let pause = lapse.min(LOOK_AGAIN);
            *quiet = Quiet::Until(Instant::now() + pause);
            return Ok(Next::Wait(pause + jitter));
        };
        // Not taken again by this process once let go, unless it asks to
        // be (below): noted now, before another task of it looks. The skip
        // list above is read before the claim, so another task of this
        // process may have worked this very line and let it go in between:
        // then the claim is given straight back.
        let first_time = self
            .tried
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(row.intent);
        if !first_time {
            store.release(row.intent, &token).await?;
            return Ok(Next::Wait(Duration::ZERO));
        }
        let checked = self
            .checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&row.intent)
            .cloned();
        let result = ledger
            .work_claimed(
                client,
                row.clone(),
                &token,
                options,
                Goal::Result,
                checked,
                Instant::now(),
            )
            .await
            .and_then(|reached| match reached {
                Reached::Done(done) => Ok(done),
                Reached::Job(row) => Err(Error::Conflict(format!(
                    "intent #{} stopped at {}",
                    row.intent, row.state
                ))),
            });
        if let Err(Error::Kling(kling::Error::RateLimited {
            retry_after,
            concurrency,
            ..
        })) = &result
            && self.give_back(row.intent, options)
        {
            return Ok(Next::GivenBack {
                retry_after: *retry_after,
                concurrency: *concurrency,
                record: row,
            });
        }
        Ok(Next::Worked {
            record: row,
            result,
        })
    }

    /// Gives a line refused by a rate limit back to the queue, this
    /// process's too, until it has been refused for longer than a run may
    /// last; says whether it did.
    fn give_back(&self, intent: i64, options: &RunOptions) -> bool {
        let first = *self
            .rate_limited
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(intent)
            .or_insert_with(Instant::now);
        if first.elapsed() < options.timeout {
            self.tried
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&intent);
            let mut quiet = self.quiet.lock().unwrap_or_else(PoisonError::into_inner);
            self.returned.fetch_add(1, Ordering::AcqRel);
            *quiet = Quiet::Look;
            tracing::info!(intent, "rate limited; the line goes back to the queue");
            return true;
        }
        false
    }
}

fn by_identity(rows: Vec<Record>) -> HashMap<String, Record> {
    rows.into_iter()
        .map(|row| (row.identity.clone(), row))
        .collect()
}
