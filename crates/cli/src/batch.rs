//! `kling batch FILE.jsonl`: many requests, a bounded number at a time,
//! through the journal, so that running the same file again skips what is
//! done and resumes what is not.
//!
//! Each line is one request in the core's serialized form, for example:
//!
//! ```text
//! {"task": "edit", "video": "clips/street.mp4", "prompt": "Make it snow on @Video1"}
//! {"task": "animate", "images": ["https://example.com/bud.png"], "prompt": "@Image1 opens", "duration": 10}
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kling::{Client, Error, Request, RequestSpec, Usd};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::Exit;
use crate::jobs::{Track, follow, submit};
use crate::journal::{Intent, Journal, JournalChoice, Stage, fingerprint};
use crate::providers::{ProviderChoice, Session};

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
    /// Where results go, as FILE-LINE.mp4.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
    /// Create again the jobs that failed in an earlier run.
    #[arg(long)]
    retry_failed: bool,
    /// Give up waiting for a job after this many seconds (it stays in the
    /// journal for `kling resume`).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    timeout: u64,
}

/// How one line ended.
#[derive(Debug)]
enum Outcome {
    Done,
    Skipped,
    Failed(String),
    MayExist(String),
    /// Created, not finished here (a timeout, a lost connection): the
    /// journal has it for `kling resume` or the next run.
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
    request: Request,
    out: PathBuf,
}

/// Reads and checks every line before anything is sent.
fn read_lines(args: &Args, client: &Client) -> Result<Vec<Line>, Exit> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", args.file.display());
        Exit::Usage
    })?;
    let stem = args
        .file
        .file_stem()
        .map_or_else(|| "batch".to_owned(), |s| s.to_string_lossy().into_owned());
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
        let checked = Request::try_from(spec).and_then(|r| client.validate(&r).map(|_| r));
        match checked {
            Ok(request) => lines.push(Line {
                number,
                request,
                out: args.out_dir.join(format!("{stem}-{number}.mp4")),
            }),
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

pub(crate) fn run(
    args: &Args,
    choice: &ProviderChoice,
    journal: &JournalChoice,
    json: bool,
) -> Exit {
    let journal = match journal.open() {
        Ok(journal) => Arc::new(journal),
        Err(exit) => return exit,
    };
    crate::providers::block_on(async move {
        let session = match Session::open(choice, false).await {
            Ok(session) => Arc::new(session),
            Err(exit) => return exit,
        };
        let Some((provider, base_url)) = session.target() else {
            eprintln!(
                "error: a batch runs through the journal, which the in-process sandbox cannot use \
                 (its jobs end with the command); run `kling sandbox` and pass --provider and \
                 --base-url, or a real provider"
            );
            return Exit::Usage;
        };
        let (provider, base_url) = (provider, base_url.map(str::to_owned));
        let lines = match read_lines(args, &session.client) {
            Ok(lines) => lines,
            Err(exit) => return exit,
        };
        if let Err(e) = std::fs::create_dir_all(&args.out_dir) {
            eprintln!("error: cannot create {}: {e}", args.out_dir.display());
            return Exit::Usage;
        }
        let batch = std::path::absolute(&args.file)
            .unwrap_or_else(|_| args.file.clone())
            .display()
            .to_string();
        let total = lines.len();
        eprintln!(
            "batch: {total} requests from {}, {} at a time, journal {}",
            args.file.display(),
            args.concurrency,
            journal.path().display()
        );
        let slots = Arc::new(Semaphore::new(args.concurrency as usize));
        let gate = Arc::new(Gate::default());
        let timeout = Duration::from_secs(args.timeout);
        let mut tasks = tokio::task::JoinSet::new();
        for line in lines {
            let (slots, gate, journal, session) = (
                Arc::clone(&slots),
                Arc::clone(&gate),
                Arc::clone(&journal),
                Arc::clone(&session),
            );
            let (batch, base_url, retry_failed) =
                (batch.clone(), base_url.clone(), args.retry_failed);
            tasks.spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else {
                    return (
                        line.number,
                        Outcome::Failed("the batch was stopped".to_owned()),
                        None,
                    );
                };
                let job = Job {
                    journal: &journal,
                    client: &session.client,
                    gate: &gate,
                    provider,
                    base_url: base_url.as_deref(),
                    batch: &batch,
                    timeout,
                    retry_failed,
                };
                let (outcome, cost) = job.run(&line).await;
                (line.number, outcome, cost)
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(result) = joined {
                results.push(result);
            }
        }
        results.sort_by_key(|(number, _, _)| *number);
        summarize(&results, json)
    })
}

/// What one line needs to run.
struct Job<'a> {
    journal: &'a Journal,
    client: &'a Client,
    gate: &'a Gate,
    provider: &'static str,
    base_url: Option<&'a str>,
    batch: &'a str,
    timeout: Duration,
    retry_failed: bool,
}

impl Job<'_> {
    async fn run(&self, line: &Line) -> (Outcome, Option<f64>) {
        let label = format!("line {}", line.number);
        let known = match self.journal.batch_line(self.batch, line.number) {
            Ok(known) => known,
            Err(e) => return (Outcome::Failed(e.to_string()), None),
        };
        let same = known
            .filter(|k| k.fingerprint == fingerprint(self.provider, self.base_url, &line.request));
        if let Some(entry) = &same {
            let cost = entry.estimate_usd;
            match entry.stage {
                Stage::Downloaded => return (Outcome::Skipped, None),
                stage if stage.id_unknown() => {
                    return (
                        Outcome::MayExist(format!(
                            "intent #{} may exist at the provider; check there (not sent again)",
                            entry.intent
                        )),
                        None,
                    );
                }
                stage if stage.resumable() => {
                    if let Some(job) = entry.job() {
                        eprintln!("{label}: resuming {job}");
                        let track = Track {
                            journal: self.journal,
                            intent: entry.intent,
                        };
                        let out = entry.output.clone().unwrap_or_else(|| line.out.clone());
                        return (self.wait(&job, &out, track).await, cost);
                    }
                }
                Stage::Failed | Stage::Cancelled if !self.retry_failed => {
                    return (
                        Outcome::Failed(format!(
                            "{} earlier: {} (--retry-failed creates it again)",
                            entry.stage.as_str(),
                            entry.detail.as_deref().unwrap_or("no reason given")
                        )),
                        None,
                    );
                }
                _ => {}
            }
        }
        self.create(line, &label).await
    }

    async fn create(&self, line: &Line, label: &str) -> (Outcome, Option<f64>) {
        let estimate = self.client.estimate(&line.request).ok().and_then(|e| e.usd);
        let model = self
            .client
            .validate(&line.request)
            .map(|o| o.wire_model)
            .unwrap_or_default();
        loop {
            self.gate.pass().await;
            let intent = self.journal.intent(&Intent {
                provider: self.provider,
                base_url: self.base_url,
                model,
                request: &line.request,
                estimate_usd: estimate.map(Usd::as_f64),
                output: Some(&line.out),
                batch: Some((self.batch, line.number)),
            });
            let track = match intent {
                Ok(intent) => Track {
                    journal: self.journal,
                    intent,
                },
                Err(e) => return (Outcome::Failed(format!("{e}; not sent")), None),
            };
            match submit(self.client, &line.request, Some(track)).await {
                Ok(job) => {
                    track.note(|j, i| j.submitted(i, &job, &line.out));
                    eprintln!("{label}: {job} submitted");
                    let cost = estimate.map(Usd::as_f64);
                    return (self.wait(&job, &line.out, track).await, cost);
                }
                // Refused before creating anything: slow the whole batch
                // down and try again.
                Err(Error::RateLimited { retry_after, .. }) => {
                    let pause = retry_after.unwrap_or(Duration::from_secs(5));
                    eprintln!(
                        "{label}: rate limited; the batch pauses {}s",
                        pause.as_secs()
                    );
                    self.gate.close_for(pause);
                }
                Err(e) if e.may_have_been_sent() => {
                    return (Outcome::MayExist(e.to_string()), None);
                }
                Err(e) => return (Outcome::Failed(e.to_string()), None),
            }
        }
    }

    async fn wait(&self, job: &kling::JobHandle, out: &Path, track: Track<'_>) -> Outcome {
        match follow(self.client, job, out, self.timeout, Some(track)).await {
            Ok(_) => Outcome::Done,
            Err(e) if e.is_timeout() || matches!(e, Error::Transport { .. }) => {
                Outcome::Unfinished(format!(
                    "{job}: {e}; `kling resume` or running the batch again finishes it"
                ))
            }
            Err(e) => Outcome::Failed(format!("{job}: {e}")),
        }
    }
}

fn summarize(results: &[(i64, Outcome, Option<f64>)], json: bool) -> Exit {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|(_, o, _)| f(o)).count();
    let done = count(|o| matches!(o, Outcome::Done));
    let skipped = count(|o| matches!(o, Outcome::Skipped));
    // The lines that ended one way, with their reasons.
    let reasons = |pick: fn(&Outcome) -> Option<&String>| -> Vec<(&i64, &String)> {
        results
            .iter()
            .filter_map(|(n, o, _)| pick(o).map(|reason| (n, reason)))
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
    let known: Vec<f64> = results.iter().filter_map(|(_, _, c)| *c).collect();
    let unknown_costs = results
        .iter()
        .filter(|(_, o, c)| matches!(o, Outcome::Done) && c.is_none())
        .count();
    let cost: f64 = known.iter().sum();
    if json {
        println!(
            "{}",
            json!({
                "done": done,
                "skipped": skipped,
                "failed": failed.iter().map(|(n, r)| json!({"line": n, "reason": r})).collect::<Vec<_>>(),
                "may_exist": may_exist.iter().map(|(n, r)| json!({"line": n, "reason": r})).collect::<Vec<_>>(),
                "unfinished": unfinished.iter().map(|(n, r)| json!({"line": n, "reason": r})).collect::<Vec<_>>(),
                "estimated_cost_usd": cost,
                "jobs_with_unknown_cost": unknown_costs,
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
        "batch: {done} done, {skipped} already done, {} failed, {} may exist, {} unfinished; \
         estimated cost ${cost:.2}{}",
        failed.len(),
        may_exist.len(),
        unfinished.len(),
        if unknown_costs > 0 {
            format!(" plus {unknown_costs} jobs at unknown prices")
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
