//! `kling batch FILE.jsonl`: many requests, a bounded number at a time,
//! through the ledger, so that running the same file again (from any
//! number of processes at once) pays for nothing twice.
//!
//! Each line is one request in the core's serialized form, for example:
//!
//! ```text
//! {"task": "edit", "video": "clips/street.mp4", "prompt": "Make it snow on @Video1"}
//! {"task": "animate", "images": ["https://example.com/bud.png"], "prompt": "@Image1 opens", "duration": 10}
//! ```
//!
//! A line is identified by what it asks for, not where it stands: the
//! batch file's name, the line's canonical request and, for identical
//! lines, which occurrence it is. Reordering lines, adding comments or
//! blank lines changes nothing; its result's file name
//! (`STEM-HASH.mp4`) is stable too.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kling::{Checked, Client, Request, RequestSpec, Usd};
use kling_ledger::{Batch, Error, Intent, Ledger, Next, Record, RunOptions, State};
use serde_json::json;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::Exit;
use crate::args::BatchPlan;
use crate::error::Failure;
use crate::ledger::LedgerChoice;
use crate::output::Output;
use crate::providers::{ProviderChoice, Session};
use crate::text::escaped;
use crate::view::View;

/// The largest batch read: a million lines of requests fit well within it.
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The longest line read: a request with a long prompt and many inputs is
/// a few KiB.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// How one line ended, for this process's summary.
#[derive(Debug)]
enum Outcome {
    /// Run to its result here.
    Done {
        estimate: Option<Usd>,
        charged: Option<Usd>,
    },
    /// Done in an earlier run.
    Skipped,
    /// Done meanwhile by another process.
    Elsewhere,
    Failed(String),
    MayExist(String),
    /// Created, not finished here (a timeout, a lost connection): the
    /// ledger has it for `kling resume` or the next run.
    Unfinished(String),
}

/// How fast the batch goes: how many lines are worked at once
/// (`--concurrency`), and when creates may go. A 429 on one create pauses
/// every create of the batch; one that names a concurrency limit also
/// takes one worker away for the rest of the run (never below one).
struct Pace {
    until: Mutex<Option<Instant>>,
    slots: Semaphore,
    /// Lines worked at once now.
    allowed: AtomicUsize,
    /// Slots to retire as they are given back.
    owed: AtomicUsize,
}

impl Pace {
    fn new(concurrency: usize) -> Self {
        Pace {
            until: Mutex::new(None),
            slots: Semaphore::new(concurrency),
            allowed: AtomicUsize::new(concurrency),
            owed: AtomicUsize::new(0),
        }
    }

    /// A slot to work a line in; `None` once the batch is stopped.
    async fn slot(&self) -> Option<SemaphorePermit<'_>> {
        loop {
            let slot = self.slots.acquire().await.ok()?;
            let retire = self
                .owed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |owed| {
                    owed.checked_sub(1)
                });
            if retire.is_err() {
                return Some(slot);
            }
            slot.forget();
        }
    }

    /// Waits until creates may go.
    async fn pass(&self) {
        loop {
            let wait = self
                .until
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .and_then(|until| until.checked_duration_since(Instant::now()));
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return,
            }
        }
    }

    /// A create of `label` was refused by a rate limit: pause every
    /// create, and work one line fewer at once when the limit is on jobs
    /// at once.
    fn rate_limited(&self, label: &str, retry_after: Option<Duration>, concurrency: bool) {
        let pause = retry_after.unwrap_or(Duration::from_secs(5));
        let lowered = if concurrency {
            self.allowed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                    (now > 1).then(|| now - 1)
                })
                .ok()
                .map(|before| {
                    self.owed.fetch_add(1, Ordering::SeqCst);
                    before - 1
                })
        } else {
            None
        };
        match lowered {
            Some(now) => eprintln!(
                "{label}: the provider's limit on jobs at once was reached; the batch works \
                 {now} at a time from now on, and pauses {}s",
                pause.as_secs()
            ),
            None => eprintln!(
                "{label}: rate limited; the batch pauses {}s",
                pause.as_secs()
            ),
        }
        let mut until = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        let new = Instant::now() + pause;
        if until.is_none_or(|old| old < new) {
            *until = Some(new);
        }
    }
}

/// One line of the file, checked.
#[derive(Clone)]
struct Line {
    number: i64,
    request: Checked,
    /// What identifies it: file name, canonical request, occurrence.
    key: String,
    out: PathBuf,
}

impl Line {
    /// What the ledger records for this line.
    fn intent(&self, overwrite: bool) -> Intent {
        Intent::new(self.request.clone(), &self.out)
            .key(self.key.clone())
            .overwrite(overwrite)
    }
}

/// A line that cannot be sent, and why.
struct BadLine {
    number: i64,
    rule: &'static str,
    message: String,
    exit: Exit,
}

impl BadLine {
    fn malformed(number: i64, rule: &'static str, message: String) -> Self {
        BadLine {
            number,
            rule,
            message,
            exit: Exit::Usage,
        }
    }

    /// A line its request's checks refused.
    fn refused(number: i64, error: &kling::Error) -> Self {
        BadLine {
            number,
            rule: error
                .violations()
                .first()
                .map_or("unsupported", |v| v.rule()),
            message: error.to_string(),
            exit: crate::error::exit_for(error),
        }
    }
}

/// Opens the batch: a regular file or a FIFO (a pipe, `<(…)`), which is
/// read line by line; a device (`/dev/zero`), a folder or a socket is
/// refused before a byte is read.
fn open(path: &Path) -> Result<std::fs::File, Failure> {
    let fail =
        |e: &dyn std::fmt::Display| Failure::usage(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
    let meta = file.metadata().map_err(|e| fail(&e))?;
    #[cfg(unix)]
    let fifo = std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type());
    #[cfg(not(unix))]
    let fifo = false;
    if !meta.is_file() && !fifo {
        return Err(Failure::usage(format!(
            "{} is not a regular file or a pipe; a batch is a JSON Lines file",
            path.display()
        )));
    }
    Ok(file)
}

/// The lines read, with their numbers, and those that cannot be read.
type RawLines = (Vec<(i64, String)>, Vec<BadLine>);

/// Reads the lines of `reader`, bounded: each line at most
/// [`MAX_LINE_BYTES`], the whole at most [`MAX_FILE_BYTES`], so that a
/// stream without end (or without a line break) fails fast in little
/// memory. A byte order mark, a line that is not UTF-8 and a line too long
/// are each reported with its number; reading stops at a line too long.
fn read_raw_lines(reader: impl Read, path: &Path) -> Result<RawLines, Failure> {
    let mut reader = BufReader::new(reader);
    let (mut lines, mut bad) = (Vec::new(), Vec::new());
    let mut total = 0u64;
    let mut number = 0i64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        number += 1;
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        if read == 0 {
            break;
        }
        total += read as u64;
        if total > MAX_FILE_BYTES {
            return Err(Failure::usage(format!(
                "{} is larger than {} MiB; split it into several batches",
                path.display(),
                MAX_FILE_BYTES >> 20
            )));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() > MAX_LINE_BYTES {
            bad.push(BadLine::malformed(
                number,
                "batch_line_too_long",
                format!(
                    "the line is longer than {} MiB; the rest of the file was not read",
                    MAX_LINE_BYTES >> 20
                ),
            ));
            break;
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        if number == 1 && buf.starts_with(b"\xef\xbb\xbf") {
            bad.push(BadLine::malformed(
                number,
                "batch_bom",
                "the file starts with a UTF-8 byte order mark; save it without one".to_owned(),
            ));
            continue;
        }
        match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(text) => lines.push((number, text)),
            Err(e) => bad.push(BadLine::malformed(
                number,
                "batch_utf8",
                format!(
                    "the line is not UTF-8 text (byte {} of the line is invalid)",
                    e.utf8_error().valid_up_to() + 1
                ),
            )),
        }
    }
    Ok((lines, bad))
}

/// The failure for a batch with lines that cannot be sent: each named with
/// its number, nothing sent.
fn bad_lines(path: &Path, bad: &[BadLine]) -> Failure {
    let exit = if bad.iter().any(|b| b.exit == Exit::Usage) {
        Exit::Usage
    } else {
        bad.first().map_or(Exit::Usage, |b| b.exit)
    };
    let kind = if exit == Exit::Rejected {
        "rejected"
    } else {
        "usage"
    };
    let shown = path.display();
    let mut failure = Failure::new(
        exit,
        kind,
        format!(
            "{} line{} of {shown} cannot be sent; nothing was sent: fix {} and run the batch \
             again",
            bad.len(),
            if bad.len() == 1 { "" } else { "s" },
            if bad.len() == 1 { "it" } else { "them" },
        ),
    );
    for line in bad {
        failure = failure
            .detail(format!("{shown}:{}: {}", line.number, line.message))
            .violation(json!({ "rule": line.rule, "line": line.number, "message": line.message }));
    }
    failure
}

/// Reads and checks every line before anything is sent.
fn read_lines(
    plan: &BatchPlan,
    raw: Vec<(i64, String)>,
    client: &Client,
) -> Result<Vec<Line>, Failure> {
    let stem = plan
        .file
        .file_stem()
        .map_or_else(|| "batch".to_owned(), |s| s.to_string_lossy().into_owned());
    let name = plan
        .file
        .file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (number, raw) in raw {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let spec: RequestSpec = match serde_json::from_str(raw) {
            Ok(spec) => spec,
            Err(e) => {
                bad.push(BadLine::malformed(
                    number,
                    "batch_json",
                    format!(
                        "not a request ({e}); each line is one JSON object such as \
                         {{\"task\": \"edit\", \"video\": \"in.mp4\", \"prompt\": \"…\"}}"
                    ),
                ));
                continue;
            }
        };
        let checked = Request::try_from(spec).and_then(|r| client.validate(&r));
        match checked {
            Ok(request) => {
                let canonical = kling_ledger::canonical(request.request());
                let occurrence = seen.entry(canonical.clone()).or_default();
                *occurrence += 1;
                let key = format!("batch\n{name}\n{canonical}\n{occurrence}");
                let hash = kling_ledger::fingerprint(&key);
                lines.push(Line {
                    number,
                    out: plan.out_dir.join(format!("{stem}-{}.mp4", &hash[..12])),
                    request,
                    key,
                });
            }
            Err(e) => bad.push(BadLine::refused(number, &e)),
        }
    }
    if bad.is_empty() {
        Ok(lines)
    } else {
        Err(bad_lines(&plan.file, &bad))
    }
}

/// Reads the URL inputs of every line that may still be created, a few
/// lines at a time: the rules apply to them, and any line they break
/// refuses the batch before anything is sent, as a line breaking a rule
/// locally does. Lines whose job exists or is done are not read again: a
/// URL that has expired since must not hold back a batch run again.
async fn read_urls(
    plan: &BatchPlan,
    lines: Vec<Line>,
    batch: &Batch,
    client: &Client,
) -> Result<Vec<Line>, Failure> {
    let Some(urls) = crate::preflight::checker(plan.preflight)? else {
        return Ok(lines);
    };
    // Only lines with URL inputs have anything to read: the ledger is
    // asked about those alone.
    let (with_urls, mut checked): (Vec<Line>, Vec<Line>) = lines
        .into_iter()
        .partition(|line| crate::preflight::has_url_inputs(&line.request));
    let intents: Vec<Intent> = with_urls.iter().map(|line| line.intent(false)).collect();
    let recorded = batch
        .recorded(client, &intents)
        .await
        .map_err(|e| Failure::from(&e))?;
    let slots = Arc::new(Semaphore::new(URL_CHECKS_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for (mut line, row) in with_urls.into_iter().zip(recorded) {
        if row.is_some_and(|row| !may_create(&row, plan.retry_failed)) {
            checked.push(line);
            continue;
        }
        let (urls, slots) = (urls.clone(), Arc::clone(&slots));
        tasks.spawn(async move {
            let _slot = slots.acquire().await;
            let label = format!("line {}: ", line.number);
            match crate::preflight::check(Some(&urls), line.request, &label).await {
                Ok(checked) => {
                    line.request = checked;
                    Ok(line)
                }
                Err(e) => Err(BadLine::refused(line.number, &e)),
            }
        });
    }
    let mut bad = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(line)) => checked.push(line),
            Ok(Err(line)) => bad.push(line),
            Err(e) => return Err(Failure::new(Exit::Usage, "batch", e.to_string())),
        }
    }
    if !bad.is_empty() {
        bad.sort_by_key(|line| line.number);
        return Err(bad_lines(&plan.file, &bad));
    }
    checked.sort_by_key(|line| line.number);
    Ok(checked)
}

/// Whether a run of the batch may create `row`'s job: it was never sent,
/// or it ended without a result and `--retry-failed` makes a new attempt.
fn may_create(row: &Record, retry_failed: bool) -> bool {
    match row.state {
        State::Intent => true,
        State::NotSent => row.resend || retry_failed,
        State::Failed | State::Cancelled => retry_failed,
        _ => false,
    }
}

/// How many lines' URLs are read at once.
const URL_CHECKS_AT_ONCE: usize = 16;

pub(crate) fn run(
    plan: &BatchPlan,
    choice: &ProviderChoice,
    ledger: &LedgerChoice,
    output: Output,
) -> Result<(), Failure> {
    // The file first, bounded: a stream without end fails here, before
    // anything is opened or sent.
    let (raw, bad) = read_raw_lines(open(&plan.file)?, &plan.file)?;
    if !bad.is_empty() {
        return Err(bad_lines(&plan.file, &bad));
    }
    crate::providers::block_on(async move {
        let mut session = Session::open(choice, false).await?;
        session.client = choice.callbacks.listen(session.client.clone()).await?;
        let session = Arc::new(session);
        let result = run_session(plan, raw, &session, ledger, output).await;
        if let Ok(session) = Arc::try_unwrap(session) {
            session.close().await;
        }
        result
    })
}

async fn run_session(
    plan: &BatchPlan,
    raw: Vec<(i64, String)>,
    session: &Arc<Session>,
    choice: &LedgerChoice,
    output: Output,
) -> Result<(), Failure> {
    if session.target().is_none() {
        return Err(Failure::usage(
            "a batch runs through the ledger, which the in-process sandbox cannot use (its \
             jobs end with the command); run `kling sandbox` and pass --provider and \
             --base-url, or a real provider",
        ));
    }
    let ledger = choice.open().await?.with_lease(plan.lease);
    let lines = read_lines(plan, raw, &session.client)?;
    let batch = Arc::new(ledger.batch(batch_name(&plan.file, &lines)));
    let lines = read_urls(plan, lines, &batch, &session.client).await?;
    std::fs::create_dir_all(&plan.out_dir)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e}", plan.out_dir.display())))?;
    eprintln!(
        "batch: {} requests from {}, {} at a time, ledger {}",
        lines.len(),
        plan.file.display(),
        plan.concurrency,
        ledger.location()
    );
    let settings = Settings {
        timeout: plan.timeout,
        retry_failed: plan.retry_failed,
        overwrite: plan.overwrite,
    };
    let mut results = Vec::new();
    let (queued, apart) = record(&batch, &ledger, &session.client, &lines, settings).await?;
    results.extend(apart.finished);
    let labels: HashMap<i64, i64> = queued.iter().map(|(&i, &n)| (i, n)).collect();
    let view = Arc::new(View::lines(labels));
    let options = RunOptions::default()
        .timeout(plan.timeout)
        .observer(view.observer())
        .results_in(&plan.out_dir);
    let pace = Arc::new(Pace::new(plan.concurrency));
    let worked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    // The batch's own lines: each worker takes the next line nobody holds.
    for _ in 0..plan.concurrency {
        let (batch, session, pace, worked, options) = (
            Arc::clone(&batch),
            Arc::clone(session),
            Arc::clone(&pace),
            Arc::clone(&worked),
            options.clone(),
        );
        tasks.spawn(async move {
            take_lines(&batch, &session.client, &pace, &options, &worked).await;
        });
    }
    // Lines whose rows are not the batch's (recorded by an older kling, or
    // retried from one): each claimed by its own row.
    let file = Arc::new(kling_ledger::absolute(&plan.file).display().to_string());
    let apart_results = Arc::new(Mutex::new(Vec::new()));
    for line in apart.lines {
        let (pace, ledger, session, file, results) = (
            Arc::clone(&pace),
            ledger.clone(),
            Arc::clone(session),
            Arc::clone(&file),
            Arc::clone(&apart_results),
        );
        tasks.spawn(async move {
            let line_job = LineJob {
                ledger: &ledger,
                client: &session.client,
                pace: &pace,
                batch: &file,
                settings,
            };
            let outcome = Box::pin(line_job.run(&line)).await;
            lock(&results).push((line.number, outcome));
        });
    }
    while tasks.join_next().await.is_some() {}
    view.finish();
    let mut ours: HashMap<i64, i64> = queued;
    for (row, result) in std::mem::take(&mut *lock(&worked)) {
        let number = ours
            .remove(&row.intent)
            .or(row.batch_line)
            .unwrap_or_default();
        results.push((number, worked_outcome(&row, result)));
    }
    results.append(&mut lock(&apart_results));
    // What other processes did with the rest of this file's lines.
    let rest: Vec<i64> = ours.keys().copied().collect();
    let rows = ledger.rows(&rest).await.map_err(|e| Failure::from(&e))?;
    for row in rows {
        if let Some(number) = ours.get(&row.intent) {
            results.push((*number, elsewhere(&row)));
        }
    }
    results.sort_by_key(|(number, _)| *number);
    match summarize(&results, output, ledger.statements()) {
        Exit::Success => Ok(()),
        // The summary said which lines failed, and why.
        exit => Err(Failure::reported(exit)),
    }
}

/// What identifies a batch in the ledger: its file's name and what its
/// lines ask for (`NAME#HASH`), so that workers on other machines (the same
/// file elsewhere) share it, and another file of the same name, or this
/// one edited, is another batch. Rows recorded under another batch are
/// still found by their lines' identities, and worked one by one.
fn batch_name(file: &Path, lines: &[Line]) -> String {
    let name = file
        .file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let mut keys: Vec<&str> = lines.iter().map(|line| line.key.as_str()).collect();
    keys.sort_unstable();
    let hash = kling_ledger::fingerprint(&keys.join("\n\n"));
    format!("{name}#{}", &hash[..16])
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lines that are not the batch queue's to take.
#[derive(Default)]
struct Apart {
    /// Ended already: done, failed, refused.
    finished: Vec<(i64, Outcome)>,
    /// Rows of another batch name: worked one by one.
    lines: Vec<Line>,
}

/// Records every line (or finds its row), and sorts them: the rows the
/// batch's workers take (intent to line number), and the rest.
async fn record(
    batch: &Batch,
    ledger: &Ledger,
    client: &Client,
    lines: &[Line],
    settings: Settings,
) -> Result<(HashMap<i64, i64>, Apart), Failure> {
    let intents = lines
        .iter()
        .map(|line| (line.number, line.intent(settings.overwrite)))
        .collect();
    let recorded = batch
        .record(client, intents)
        .await
        .map_err(|e| Failure::from(&e))?;
    let mut queued = HashMap::new();
    let mut apart = Apart::default();
    for (line, recorded) in lines.iter().zip(recorded) {
        let mut row = match recorded {
            Ok(row) => row,
            Err(e) => {
                apart
                    .finished
                    .push((line.number, Outcome::Failed(e.to_string())));
                continue;
            }
        };
        let refused = row.state == State::NotSent && !row.resend;
        let ended = refused || matches!(row.state, State::Failed | State::Cancelled);
        match row.state {
            State::Downloaded => {
                apart.finished.push((line.number, Outcome::Skipped));
                continue;
            }
            _ if ended && !settings.retry_failed => {
                let reason = format!(
                    "{} earlier: {} (--retry-failed creates it again)",
                    if refused {
                        "refused"
                    } else {
                        row.state.as_str()
                    },
                    row.detail.as_deref().unwrap_or("no reason given")
                );
                apart.finished.push((line.number, Outcome::Failed(reason)));
                continue;
            }
            // --retry-failed: a new attempt of what failed or was refused.
            _ if ended => match ledger.retry(&row).await {
                Ok(next) => row = next,
                Err(e) => {
                    apart
                        .finished
                        .push((line.number, Outcome::Failed(e.to_string())));
                    continue;
                }
            },
            _ => {}
        }
        if row.batch.as_deref() == Some(batch.name()) {
            queued.insert(row.intent, line.number);
        } else {
            apart.lines.push(line.clone());
        }
    }
    Ok((queued, apart))
}

/// One worker of the batch: takes lines until none is left for it.
async fn take_lines(
    batch: &Batch,
    client: &Client,
    pace: &Pace,
    options: &RunOptions,
    worked: &Mutex<Vec<(Record, Result<kling_ledger::Done, Error>)>>,
) {
    loop {
        pace.pass().await;
        let next = {
            let Some(_slot) = pace.slot().await else {
                return;
            };
            batch.next(client, options).await
        };
        match next {
            Ok(Next::Worked { record, result }) => lock(worked).push((record, result)),
            // Refused before creating anything: slow the whole batch down;
            // the line is taken again (until --timeout).
            Ok(Next::GivenBack {
                record,
                retry_after,
                concurrency,
            }) => {
                let label = format!("line {}", record.batch_line.unwrap_or_default());
                pace.rate_limited(&label, retry_after, concurrency);
            }
            Ok(Next::Wait(pause)) => tokio::time::sleep(pause).await,
            Ok(Next::Finished | _) => return,
            Err(e) => {
                eprintln!("batch: {}", escaped(&e.to_string()));
                return;
            }
        }
    }
}

/// How a line this process worked ended.
fn worked_outcome(row: &Record, result: Result<kling_ledger::Done, Error>) -> Outcome {
    match result {
        Ok(done) if done.status.is_none() => Outcome::Elsewhere,
        Ok(done) => Outcome::Done {
            estimate: done.record.estimate,
            charged: done.record.charged_usd,
        },
        Err(e) => outcome_of(row, &e),
    }
}

/// How a line another process worked stands.
fn elsewhere(row: &Record) -> Outcome {
    let detail = row.detail.as_deref().unwrap_or("no reason given");
    match row.state {
        State::Downloaded => Outcome::Elsewhere,
        State::Failed | State::Cancelled => Outcome::Failed(format!(
            "{}: {} in another process: {detail}",
            row.name(),
            row.state
        )),
        State::NotSent if !row.resend => Outcome::Failed(format!(
            "{}: refused in another process: {detail}",
            row.name()
        )),
        State::MayExist => Outcome::MayExist(format!("{}: {detail}", row.name())),
        state => Outcome::Unfinished(format!(
            "{}: {state}, left to the process that holds it; `kling resume` or running the \
             batch again finishes it",
            row.name()
        )),
    }
}

#[derive(Clone, Copy)]
struct Settings {
    timeout: Duration,
    retry_failed: bool,
    overwrite: bool,
}

/// What one line needs to run.
struct LineJob<'a> {
    ledger: &'a Ledger,
    client: &'a Client,
    pace: &'a Pace,
    batch: &'a str,
    settings: Settings,
}

impl LineJob<'_> {
    async fn run(&self, line: &Line) -> Outcome {
        let label = format!("line {}", line.number);
        let started = Instant::now();
        let intent = line
            .intent(self.settings.overwrite)
            .batch(self.batch, line.number);
        // Recorded within a slot too: a thousand lines do not all reach
        // for the ledger (and a thread each) at once.
        let recorded = {
            let Some(_slot) = self.pace.slot().await else {
                return Outcome::Failed("the batch was stopped".to_owned());
            };
            self.ledger.record(self.client, &intent).await
        };
        let mut row = match recorded {
            Ok(row) => row,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        match row.state {
            State::Downloaded => return Outcome::Skipped,
            State::Failed | State::Cancelled if self.settings.retry_failed => {
                match self.ledger.retry(&row).await {
                    Ok(next) => row = next,
                    Err(e) => return Outcome::Failed(e.to_string()),
                }
            }
            State::NotSent if !row.resend && self.settings.retry_failed => {
                match self.ledger.retry(&row).await {
                    Ok(next) => row = next,
                    Err(e) => return Outcome::Failed(e.to_string()),
                }
            }
            State::Failed | State::Cancelled => {
                return Outcome::Failed(format!(
                    "{} earlier: {} (--retry-failed creates it again)",
                    row.state,
                    row.detail.as_deref().unwrap_or("no reason given")
                ));
            }
            _ => {}
        }
        let view = Arc::new(View::labelled(label.clone()));
        let options = RunOptions::default()
            .timeout(self.settings.timeout)
            .wait_for_others(false)
            .observer(view.observer());
        let mut busy_since = None;
        loop {
            let result = {
                let Some(_slot) = self.pace.slot().await else {
                    return Outcome::Failed("the batch was stopped".to_owned());
                };
                self.pace.pass().await;
                self.ledger
                    .work_checked(self.client, row.intent, &line.request, &options)
                    .await
            };
            match result {
                // The row was done when this process got to it.
                Ok(done) if done.status.is_none() => return Outcome::Elsewhere,
                Ok(done) => {
                    return Outcome::Done {
                        estimate: done.record.estimate,
                        charged: done.record.charged_usd,
                    };
                }
                // Another process works the line: come back when its lease
                // may have lapsed; if it finishes, the line is done there.
                Err(Error::Busy { .. }) => {
                    let since = *busy_since.get_or_insert(Instant::now());
                    if since.elapsed() > self.settings.timeout {
                        return Outcome::Unfinished(format!(
                            "intent #{} is still worked by another process",
                            row.intent
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(500..1500))).await;
                    if let Ok(Some(now)) = self.ledger.get(row.intent).await
                        && now.state == State::Downloaded
                    {
                        return Outcome::Elsewhere;
                    }
                }
                // Refused before creating anything: slow the whole batch
                // down and send it again.
                Err(Error::Kling(kling::Error::RateLimited {
                    retry_after,
                    concurrency,
                    ..
                })) if started.elapsed() < self.settings.timeout => {
                    self.pace.rate_limited(&label, retry_after, concurrency);
                }
                Err(e) => return outcome_of(&row, &e),
            }
        }
    }
}

fn outcome_of(row: &Record, error: &Error) -> Outcome {
    let name = row.name();
    if error.may_exist() {
        return Outcome::MayExist(format!("{name}: {error}"));
    }
    match error {
        Error::Kling(e) if e.is_timeout() || matches!(e, kling::Error::Transport { .. }) => {
            Outcome::Unfinished(format!(
                "{name}: {e}; `kling resume` or running the batch again finishes it"
            ))
        }
        Error::Unrecorded { .. } => Outcome::Unfinished(error.to_string()),
        _ => Outcome::Failed(format!("{name}: {error}")),
    }
}

/// Prints this process's summary (its own lines' outcomes, and the ledger
/// statements it ran) and says how the command exits.
fn summarize(results: &[(i64, Outcome)], output: Output, statements: u64) -> Exit {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|(_, o)| f(o)).count();
    let done = count(|o| matches!(o, Outcome::Done { .. }));
    let skipped = count(|o| matches!(o, Outcome::Skipped));
    let elsewhere = count(|o| matches!(o, Outcome::Elsewhere));
    // The lines that ended one way, with their reasons.
    let reasons = |pick: fn(&Outcome) -> Option<&String>| -> Vec<(&i64, &String)> {
        results
            .iter()
            .filter_map(|(n, o)| pick(o).map(|reason| (n, reason)))
            .collect()
    };
    let failed = reasons(|o| match o {
        Outcome::Failed(reason) => Some(reason),
        _ => None,
    });
    let may_exist = reasons(|o| match o {
        Outcome::MayExist(reason) => Some(reason),
        _ => None,
    });
    let unfinished = reasons(|o| match o {
        Outcome::Unfinished(reason) => Some(reason),
        _ => None,
    });
    let (mut estimated, mut charged, mut unpriced) = (Usd::ZERO, Usd::ZERO, 0);
    for (_, outcome) in results {
        if let Outcome::Done {
            estimate,
            charged: c,
        } = outcome
        {
            match estimate {
                Some(usd) => estimated = estimated + *usd,
                None => unpriced += 1,
            }
            if let Some(usd) = c {
                charged = charged + *usd;
            }
        }
    }
    if output.is_json() {
        let list = |items: &[(&i64, &String)]| -> Vec<serde_json::Value> {
            items
                .iter()
                .map(|(n, r)| json!({"line": n, "reason": r}))
                .collect()
        };
        println!(
            "{}",
            json!({
                "done": done,
                "skipped": skipped,
                "done_elsewhere": elsewhere,
                "failed": list(&failed),
                "may_exist": list(&may_exist),
                "unfinished": list(&unfinished),
                "estimated_cost_usd": estimated.as_f64(),
                "charged_usd": charged.as_f64(),
                "jobs_with_unknown_cost": unpriced,
                "ledger_statements": statements,
            })
        );
    }
    for (line, reason) in &failed {
        eprintln!("line {line}: failed: {}", escaped(reason));
    }
    for (line, reason) in &may_exist {
        eprintln!("line {line}: may exist: {}", escaped(reason));
    }
    for (line, reason) in &unfinished {
        eprintln!("line {line}: unfinished: {}", escaped(reason));
    }
    eprintln!(
        "batch: {done} done, {skipped} already done, {elsewhere} done by another process, {} \
         failed, {} may exist, {} unfinished; estimated {estimated}{}, charged {charged}",
        failed.len(),
        may_exist.len(),
        unfinished.len(),
        if unpriced > 0 {
            format!(" (and {unpriced} jobs without an estimate)")
        } else {
            String::new()
        }
    );
    if !may_exist.is_empty() || !unfinished.is_empty() {
        Exit::Transport
    } else if !failed.is_empty() {
        Exit::Refused
    } else {
        Exit::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> (Vec<(i64, String)>, Vec<BadLine>) {
        read_raw_lines(bytes, Path::new("b.jsonl")).unwrap_or_else(|_| panic!("read failed"))
    }

    #[test]
    fn lines_are_read_with_their_numbers() {
        let (lines, bad) = read(b"{\"a\": 1}\r\n\n# x\nlast");
        assert!(bad.is_empty());
        let numbers: Vec<_> = lines.iter().map(|(n, t)| (*n, t.as_str())).collect();
        assert_eq!(
            numbers,
            [(1, "{\"a\": 1}"), (2, ""), (3, "# x"), (4, "last")]
        );
    }

    #[test]
    fn a_bom_and_bytes_that_are_not_utf8_are_named_by_line() {
        let (lines, bad) = read(b"\xef\xbb\xbf{}\n{}\nab\xff\n{}\n");
        let found: Vec<_> = bad.iter().map(|b| (b.number, b.rule, b.exit)).collect();
        assert_eq!(
            found,
            [
                (1, "batch_bom", Exit::Usage),
                (3, "batch_utf8", Exit::Usage)
            ]
        );
        assert!(bad[1].message.contains("byte 3"), "{}", bad[1].message);
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn a_stream_without_line_breaks_ends_after_one_line_of_the_cap() {
        // An endless stream: what /dev/zero or `yes | tr -d '\n'` gives.
        let started = Instant::now();
        let (lines, bad) =
            read_raw_lines(std::io::repeat(0), Path::new("zero")).unwrap_or_else(|_| panic!());
        assert!(lines.is_empty());
        assert_eq!(bad.len(), 1);
        assert_eq!((bad[0].number, bad[0].rule), (1, "batch_line_too_long"));
        assert!(started.elapsed() < Duration::from_secs(5));
        // A long line after good ones is named with its number.
        let mut text = b"{}\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        let (lines, bad) = read(&text);
        assert_eq!(lines.len(), 1);
        assert_eq!(bad[0].number, 2);
        // A line of exactly the cap is read.
        let mut text = vec![b' '; MAX_LINE_BYTES];
        text.push(b'\n');
        let (lines, bad) = read(&text);
        assert!(bad.is_empty());
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn bad_lines_are_one_failure_with_a_violation_each() {
        let bad = [
            BadLine::malformed(2, "batch_json", "not a request".to_owned()),
            BadLine {
                number: 5,
                rule: "duration_range",
                message: "duration: 7 s".to_owned(),
                exit: Exit::Rejected,
            },
        ];
        let failure = bad_lines(Path::new("b.jsonl"), &bad);
        assert_eq!(failure.exit, Exit::Usage);
        let doc = failure.document();
        assert_eq!(doc["error"]["violations"][1]["line"], 5);
        assert_eq!(doc["error"]["violations"][0]["rule"], "batch_json");
        assert!(failure.message().contains("2 lines of b.jsonl"));
        // Lines that only break rules: exit 1.
        let failure = bad_lines(Path::new("b.jsonl"), &bad[1..]);
        assert_eq!(failure.exit, Exit::Rejected);
        assert_eq!(failure.document()["error"]["kind"], "rejected");
    }
}
