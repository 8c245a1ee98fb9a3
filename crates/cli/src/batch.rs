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
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kling::{Checked, Client, Request, RequestSpec, Usd};
use kling_ledger::{Error, Intent, Ledger, Record, RunOptions, State};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::Exit;
use crate::jobs::View;
use crate::ledger::LedgerChoice;
use crate::providers::{ProviderChoice, Session};

/// The largest batch file read: a million lines of requests fit well
/// within it.
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// `kling batch`'s flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The requests, one JSON object a line (blank lines and lines starting
    /// with # are skipped).
    #[arg(value_name = "FILE.jsonl")]
    file: PathBuf,
    /// How many jobs run at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Where results go, as STEM-HASH.mp4 (HASH names the line's request).
    #[arg(long, value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
    /// Replace a result file that exists but that the ledger did not write.
    #[arg(long)]
    overwrite: bool,
    /// Create again the jobs that failed, were cancelled or were refused
    /// in an earlier run.
    #[arg(long)]
    retry_failed: bool,
    /// How long a line stays claimed by a worker that stops renewing it
    /// (a process killed, a machine gone) before another worker takes it
    /// over.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..=86_400))]
    lease: u64,
    /// Give up waiting for a job after this many seconds (it stays in the
    /// ledger for `kling resume`).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    timeout: u64,
}

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

/// Requests that wait for a rate limit to pass: a 429 on one create
/// pauses every create of the batch.
#[derive(Default)]
struct Gate {
    until: Mutex<Option<Instant>>,
}

impl Gate {
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

    fn close_for(&self, pause: Duration) {
        let mut until = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        let new = Instant::now() + pause;
        if until.is_none_or(|old| old < new) {
            *until = Some(new);
        }
    }
}

/// One line of the file, checked.
struct Line {
    number: i64,
    request: Checked,
    /// What identifies it: file name, canonical request, occurrence.
    key: String,
    out: PathBuf,
}

/// Reads the file, bounded: a batch is text, not a stream without end.
fn read_file(args: &Args) -> Result<String, Exit> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: cannot read {}: {e}", args.file.display());
        Exit::Usage
    };
    let file = std::fs::File::open(&args.file).map_err(|e| fail(&e))?;
    let meta = file.metadata().map_err(|e| fail(&e))?;
    if !meta.is_file() {
        eprintln!(
            "error: {} is not a regular file; a batch is a JSON Lines file",
            args.file.display()
        );
        return Err(Exit::Usage);
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(&e))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        eprintln!(
            "error: {} is larger than {} MiB; split it into several batches",
            args.file.display(),
            MAX_FILE_BYTES / 1024 / 1024
        );
        return Err(Exit::Usage);
    }
    Ok(text)
}

/// Reads and checks every line before anything is sent.
fn read_lines(args: &Args, client: &Client) -> Result<Vec<Line>, Exit> {
    let text = read_file(args)?;
    let stem = args
        .file
        .file_stem()
        .map_or_else(|| "batch".to_owned(), |s| s.to_string_lossy().into_owned());
    let name = args
        .file
        .file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut lines = Vec::new();
    let mut worst = None;
    for (index, raw) in text.lines().enumerate() {
        let number = i64::try_from(index + 1).unwrap_or(i64::MAX);
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let spec: RequestSpec = match serde_json::from_str(raw) {
            Ok(spec) => spec,
            Err(e) => {
                eprintln!(
                    "error: {}:{number}: not a request ({e}); each line is one JSON object such as \
                     {{\"task\": \"edit\", \"video\": \"in.mp4\", \"prompt\": \"…\"}}",
                    args.file.display()
                );
                worst = Some(Exit::Usage);
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
                    out: args.out_dir.join(format!("{stem}-{}.mp4", &hash[..12])),
                    request,
                    key,
                });
            }
            Err(e) => {
                eprintln!("error: {}:{number}: {e}", args.file.display());
                worst = worst.or(Some(crate::jobs::exit_for(&e)));
            }
        }
    }
    match worst {
        Some(exit) => {
            eprintln!("nothing was sent: fix the lines above and run the batch again");
            Err(exit)
        }
        None => Ok(lines),
    }
}

pub(crate) fn run(args: &Args, choice: &ProviderChoice, ledger: &LedgerChoice, json: bool) -> Exit {
    crate::providers::block_on(async move {
        let session = match Session::open(choice, false).await {
            Ok(session) => Arc::new(session),
            Err(exit) => return exit,
        };
        let exit = run_session(args, &session, ledger, json).await;
        if let Ok(session) = Arc::try_unwrap(session) {
            session.close().await;
        }
        exit
    })
}

async fn run_session(
    args: &Args,
    session: &Arc<Session>,
    choice: &LedgerChoice,
    json: bool,
) -> Exit {
    if session.target().is_none() {
        eprintln!(
            "error: a batch runs through the ledger, which the in-process sandbox cannot use \
             (its jobs end with the command); run `kling sandbox` and pass --provider and \
             --base-url, or a real provider"
        );
        return Exit::Usage;
    }
    let ledger = match choice.open() {
        Ok(ledger) => ledger.with_lease(Duration::from_secs(args.lease)),
        Err(exit) => return exit,
    };
    let lines = match read_lines(args, &session.client) {
        Ok(lines) => lines,
        Err(exit) => return exit,
    };
    if let Err(e) = std::fs::create_dir_all(&args.out_dir) {
        eprintln!("error: cannot create {}: {e}", args.out_dir.display());
        return Exit::Usage;
    }
    let total = lines.len();
    eprintln!(
        "batch: {total} requests from {}, {} at a time, ledger {}",
        args.file.display(),
        args.concurrency,
        ledger.location()
    );
    let slots = Arc::new(Semaphore::new(args.concurrency as usize));
    let gate = Arc::new(Gate::default());
    let batch = Arc::new(kling_ledger::absolute(&args.file).display().to_string());
    let mut tasks = tokio::task::JoinSet::new();
    for line in lines {
        let (slots, gate, ledger, session, batch) = (
            Arc::clone(&slots),
            Arc::clone(&gate),
            ledger.clone(),
            Arc::clone(session),
            Arc::clone(&batch),
        );
        let settings = Settings {
            timeout: Duration::from_secs(args.timeout),
            retry_failed: args.retry_failed,
            overwrite: args.overwrite,
        };
        tasks.spawn(async move {
            let line_job = LineJob {
                ledger: &ledger,
                client: &session.client,
                gate: &gate,
                slots: &slots,
                batch: &batch,
                settings,
            };
            let outcome = line_job.run(&line).await;
            (line.number, outcome)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(number, _)| *number);
    summarize(&results, json)
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
    gate: &'a Gate,
    slots: &'a Semaphore,
    batch: &'a str,
    settings: Settings,
}

impl LineJob<'_> {
    async fn run(&self, line: &Line) -> Outcome {
        let label = format!("line {}", line.number);
        let started = Instant::now();
        let intent = Intent::new(line.request.clone(), &line.out)
            .key(line.key.clone())
            .overwrite(self.settings.overwrite)
            .batch(self.batch, line.number);
        // Recorded within a slot too: a thousand lines do not all reach
        // for the ledger (and a thread each) at once.
        let recorded = {
            let Ok(_slot) = self.slots.acquire().await else {
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
                let Ok(_slot) = self.slots.acquire().await else {
                    return Outcome::Failed("the batch was stopped".to_owned());
                };
                self.gate.pass().await;
                self.ledger.work(self.client, row.intent, &options).await
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
                Err(Error::Kling(kling::Error::RateLimited { retry_after, .. }))
                    if started.elapsed() < self.settings.timeout =>
                {
                    let pause = retry_after.unwrap_or(Duration::from_secs(5));
                    eprintln!(
                        "{label}: rate limited; the batch pauses {}s",
                        pause.as_secs()
                    );
                    self.gate.close_for(pause);
                }
                Err(e) => return outcome_of(&row, &e),
            }
        }
    }
}

fn outcome_of(row: &Record, error: &Error) -> Outcome {
    let name = crate::text::escaped(&row.name());
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

fn summarize(results: &[(i64, Outcome)], json: bool) -> Exit {
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
    if json {
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
            })
        );
    }
    for (line, reason) in &failed {
        eprintln!("line {line}: failed: {reason}");
    }
    for (line, reason) in &may_exist {
        eprintln!("line {line}: may exist: {reason}");
    }
    for (line, reason) in &unfinished {
        eprintln!("line {line}: unfinished: {reason}");
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
