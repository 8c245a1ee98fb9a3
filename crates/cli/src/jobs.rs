//! `edit`, `refer`, `animate`, `compose`, and `status`, `wait`, `cancel`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kling::{
    AnimateRequest, AspectRatio, Checked, Client, ComposeRequest, EditRequest, Element, Error,
    JobHandle, JobState, Media, Mode, Model, ReferRequest, Request, Usd,
};
use kling_ledger::{Done, Event, Intent, Ledger, Priced, RunOptions, State};
use serde_json::json;

use crate::Exit;
use crate::ledger::LedgerChoice;
use crate::progress::Progress;
use crate::providers::{ProviderChoice, Session};

/// Flags every job command takes.
#[derive(Debug, clap::Args)]
pub(crate) struct JobFlags {
    /// The model.
    #[arg(long, default_value = "o1")]
    model: Model,
    /// The quality mode.
    #[arg(long, default_value = "pro")]
    mode: Mode,
    /// Where to write the result (default: JOB-ID.mp4 in the current directory).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace the --out file when it exists (by default it is refused
    /// before anything is sent).
    #[arg(long)]
    overwrite: bool,
    /// Print the job and exit without waiting for it.
    #[arg(long)]
    no_wait: bool,
    /// Print the request that would be sent, and its estimate; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Refuse to send when the estimate is above this many dollars, or unknown.
    #[arg(long, value_name = "USD")]
    max_cost: Option<Usd>,
    /// Give up waiting after this many seconds (the job may still finish).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    timeout: u64,
}

/// `--element FRONT[,REF...]`.
#[derive(Clone, Debug)]
pub(crate) struct ElementArg(Element);

impl std::str::FromStr for ElementArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(',').map(str::trim).filter(|p| !p.is_empty());
        let front = parts
            .next()
            .ok_or("an element needs a frontal image: FRONT[,REF...]")?;
        let element = parts.fold(Element::new(media(front)), |e, r| e.reference(media(r)));
        Ok(ElementArg(element))
    }
}

fn media(s: &str) -> Media {
    s.parse().unwrap_or_else(|never| match never {})
}

/// The four tasks' own flags.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TaskCommand {
    /// Edit a video from an instruction ("remove the car", "make it snow").
    Edit {
        /// The video: a URL or a local .mp4/.mov.
        #[arg(long)]
        video: String,
        /// The instruction; refer to inputs as @Video1, @Image1, @Element1.
        #[arg(long)]
        prompt: String,
        /// A reference image (repeat for several): @Image1, @Image2…
        #[arg(long = "image", value_name = "IMAGE")]
        images: Vec<String>,
        /// An element: its frontal image, then other angles, comma-separated.
        #[arg(long = "element", value_name = "FRONT[,REF...]")]
        elements: Vec<ElementArg>,
        /// Keep the input's audio.
        #[arg(long)]
        keep_audio: bool,
        #[command(flatten)]
        flags: JobFlags,
    },
    /// Make a new shot guided by a reference video.
    Refer {
        /// The reference video: a URL or a local .mp4/.mov.
        #[arg(long)]
        video: String,
        /// The instruction.
        #[arg(long)]
        prompt: String,
        /// A reference image (repeat for several).
        #[arg(long = "image", value_name = "IMAGE")]
        images: Vec<String>,
        /// An element: FRONT[,REF...].
        #[arg(long = "element", value_name = "FRONT[,REF...]")]
        elements: Vec<ElementArg>,
        /// Output length in whole seconds, 3 to 10.
        #[arg(long, default_value_t = 5)]
        duration: u32,
        /// 16:9, 9:16 or 1:1.
        #[arg(long, default_value = "16:9")]
        aspect_ratio: AspectRatio,
        /// Keep the reference video's audio.
        #[arg(long)]
        keep_audio: bool,
        #[command(flatten)]
        flags: JobFlags,
    },
    /// Animate a first frame, optionally towards a last frame.
    Animate {
        /// The first frame (@Image1).
        #[arg(long)]
        first: String,
        /// The last frame (@Image2).
        #[arg(long)]
        last: Option<String>,
        /// The instruction.
        #[arg(long)]
        prompt: String,
        /// Output length in whole seconds: 3 to 10, or 5 or 10 with one frame.
        #[arg(long, default_value_t = 5)]
        duration: u32,
        #[command(flatten)]
        flags: JobFlags,
    },
    /// Compose a clip from reference images and elements.
    Compose {
        /// A reference image (repeat for several).
        #[arg(long = "image", value_name = "IMAGE")]
        images: Vec<String>,
        /// An element: FRONT[,REF...].
        #[arg(long = "element", value_name = "FRONT[,REF...]")]
        elements: Vec<ElementArg>,
        /// The instruction.
        #[arg(long)]
        prompt: String,
        /// Output length in whole seconds, 3 to 10.
        #[arg(long, default_value_t = 5)]
        duration: u32,
        /// 16:9, 9:16 or 1:1.
        #[arg(long, default_value = "16:9")]
        aspect_ratio: AspectRatio,
        #[command(flatten)]
        flags: JobFlags,
    },
}

impl TaskCommand {
    fn into_request(self) -> (Request, JobFlags) {
        let elements = |list: Vec<ElementArg>| list.into_iter().map(|e| e.0);
        match self {
            TaskCommand::Edit {
                video,
                prompt,
                images,
                elements: e,
                keep_audio,
                flags,
            } => {
                let r = EditRequest::new(media(&video), prompt)
                    .keep_audio(keep_audio)
                    .model(flags.model)
                    .mode(flags.mode);
                let r = images.iter().fold(r, |r, i| r.image(media(i)));
                (elements(e).fold(r, EditRequest::element).into(), flags)
            }
            TaskCommand::Refer {
                video,
                prompt,
                images,
                elements: e,
                duration,
                aspect_ratio,
                keep_audio,
                flags,
            } => {
                let r = ReferRequest::new(media(&video), prompt)
                    .keep_audio(keep_audio)
                    .duration(duration)
                    .aspect_ratio(aspect_ratio)
                    .model(flags.model)
                    .mode(flags.mode);
                let r = images.iter().fold(r, |r, i| r.image(media(i)));
                (elements(e).fold(r, ReferRequest::element).into(), flags)
            }
            TaskCommand::Animate {
                first,
                last,
                prompt,
                duration,
                flags,
            } => {
                let r = AnimateRequest::new(media(&first), prompt)
                    .duration(duration)
                    .model(flags.model)
                    .mode(flags.mode);
                let r = match last {
                    Some(last) => r.last(media(&last)),
                    None => r,
                };
                (r.into(), flags)
            }
            TaskCommand::Compose {
                images,
                elements: e,
                prompt,
                duration,
                aspect_ratio,
                flags,
            } => {
                let r = ComposeRequest::new(prompt)
                    .duration(duration)
                    .aspect_ratio(aspect_ratio)
                    .model(flags.model)
                    .mode(flags.mode);
                let r = images.iter().fold(r, |r, i| r.image(media(i)));
                (elements(e).fold(r, ComposeRequest::element).into(), flags)
            }
        }
    }
}

/// The exit code for an error, as the CLI contract says.
pub(crate) fn exit_for(error: &Error) -> Exit {
    match error {
        Error::InvalidRequest(_) | Error::Unsupported { .. } => Exit::Rejected,
        // An unusable key is a usage error: fix it and run again.
        Error::Auth { .. } => Exit::Usage,
        Error::Transport { .. } | Error::Timeout { .. } => Exit::Transport,
        _ => Exit::Refused,
    }
}

/// Reports an error: on stderr with its causes, and with `--json` as one
/// document on stdout.
pub(crate) fn report_error(
    message: &str,
    kind: &str,
    may_exist: bool,
    job: Option<&JobHandle>,
    json: bool,
) {
    eprintln!("error: {message}");
    if json {
        println!(
            "{}",
            json!({ "error": {
                "kind": kind,
                "message": message,
                "may_exist": may_exist,
                "job": job.map(ToString::to_string),
            }})
        );
    }
}

/// Reports a provider, transport or rule error with what to do about it;
/// returns its exit code.
pub(crate) fn fail(error: &Error, json: bool) -> Exit {
    let kind = match exit_for(error) {
        Exit::Rejected => "rejected",
        Exit::Transport if error.is_timeout() => "timeout",
        Exit::Transport => "transport",
        _ => "provider",
    };
    let may_exist = error.may_have_been_sent() && error.job().is_none();
    if json {
        let violations: Vec<_> = error
            .violations()
            .iter()
            .map(|v| json!({ "rule": v.rule(), "message": v.to_string() }))
            .collect();
        println!(
            "{}",
            json!({ "error": {
                "kind": kind,
                "message": error.to_string(),
                "violations": (!violations.is_empty()).then_some(violations),
                "may_exist": may_exist,
                "job": error.job().map(ToString::to_string),
            }})
        );
    }
    eprintln!("error: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        eprintln!("  caused by: {inner}");
        cause = inner.source();
    }
    if may_exist {
        eprintln!(
            "hint: the job may exist at the provider; it is in the ledger (`kling jobs`), and \
             `kling resume` looks for it where the provider allows it; it is never sent again"
        );
    }
    if let Some(job) = error.job() {
        eprintln!("hint: follow the job with `kling wait {job}` or `kling resume`");
    }
    exit_for(error)
}

/// A key that makes each run of a task command its own job.
fn fresh_key() -> String {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("run {at:x} {:016x}", fastrand::u64(..))
}

pub(crate) fn run(
    command: TaskCommand,
    choice: &ProviderChoice,
    ledger: &LedgerChoice,
    json: bool,
) -> Exit {
    let (request, flags) = command.into_request();
    crate::providers::block_on(async move {
        let session = match Session::open(choice, flags.dry_run).await {
            Ok(session) => session,
            Err(exit) => return exit,
        };
        let exit = match session.ledger(ledger) {
            Ok(ledger) => run_request(&session, &ledger, request, &flags, json).await,
            Err(exit) => exit,
        };
        session.close().await;
        exit
    })
}

async fn run_request(
    session: &Session,
    ledger: &Ledger,
    request: Request,
    flags: &JobFlags,
    json: bool,
) -> Exit {
    let client = &session.client;
    // The one validation of this run: every rule, each local file probed
    // once. Everything after takes the checked request.
    let checked = match client.validate(&request) {
        Ok(checked) => checked,
        Err(e) => return fail(&e, json),
    };
    let priced = match ledger.estimate(client, &checked).await {
        Ok(priced) => priced,
        Err(e) => return crate::ledger::fail(&e, json),
    };
    if flags.dry_run {
        return dry_run(client, &checked, &priced, json);
    }
    if !json {
        eprintln!("estimate: {priced}");
    }
    let intent = match &flags.out {
        Some(out) => Intent::new(checked, out),
        None => Intent::named_by_job(checked, "."),
    }
    .key(fresh_key())
    .overwrite(flags.overwrite);
    let intent = match flags.max_cost {
        Some(max) => intent.max_cost(max),
        None => intent,
    };
    let view = Arc::new(View::default());
    let options = RunOptions::default()
        .timeout(Duration::from_secs(flags.timeout))
        .observer(view.observer());
    let result = if flags.no_wait {
        ledger.send(client, intent, &options).await.map(|row| {
            let job = row.job().map(|j| j.to_string()).unwrap_or_default();
            if json {
                println!(
                    "{}",
                    json!({ "job": job, "intent": row.intent, "state": row.state,
                            "estimate_usd": priced.usd.map(Usd::as_f64) })
                );
            } else {
                println!("{}", crate::text::escaped(&job));
            }
        })
    } else {
        ledger
            .run(client, intent, &options)
            .await
            .map(|done| report(&done, Output::from_json(json)))
    };
    view.finish();
    match result {
        Ok(()) => Exit::Success,
        Err(e) => crate::ledger::fail(&e, json),
    }
}

/// `--dry-run`: the call that would be sent and its estimate.
fn dry_run(client: &Client, checked: &Checked, priced: &Priced, json: bool) -> Exit {
    let call = match client.prepare(checked) {
        Ok(call) => call,
        Err(e) => return fail(&e, json),
    };
    let provider = client.provider().name();
    if json {
        println!(
            "{}",
            json!({
                "provider": provider,
                "method": call.method,
                "url": call.url,
                "body": call.body,
                "estimate_usd": priced.usd.map(Usd::as_f64),
            })
        );
    } else {
        println!("{} {}", call.method, call.url);
        println!(
            "{}",
            serde_json::to_string_pretty(&call.body).unwrap_or_default()
        );
        println!("estimate: {priced}");
        eprintln!("dry run: nothing was sent");
    }
    Exit::Success
}

/// What a running job shows on stderr: its submission, then a progress
/// line (a bar on a terminal).
#[derive(Default)]
pub(crate) struct View {
    progress: Mutex<Option<Progress>>,
    /// A label before each line (a batch's line number).
    label: Option<String>,
}

impl View {
    pub(crate) fn labelled(label: String) -> Self {
        View {
            progress: Mutex::new(None),
            label: Some(label),
        }
    }

    pub(crate) fn observer(self: &Arc<Self>) -> kling_ledger::Observer {
        let view = Arc::clone(self);
        Arc::new(move |event: &Event| view.show(event))
    }

    fn start(&self, name: &str) {
        // A labelled view shows many jobs at once: lines, no bar.
        if self.label.is_some() {
            return;
        }
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if progress.is_none() {
            *progress = Some(Progress::new(&crate::text::escaped(name)));
        }
    }

    fn show(&self, event: &Event) {
        let label = self
            .label
            .as_deref()
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
        match event {
            Event::Submitted { job, .. } => {
                eprintln!(
                    "{label}job {} submitted",
                    crate::text::escaped(&job.to_string())
                );
                self.start(&job.to_string());
            }
            Event::Reconciled { job, .. } => {
                eprintln!(
                    "{label}found {} at the provider (its create's answer was lost)",
                    crate::text::escaped(&job.to_string())
                );
                self.start(&job.to_string());
            }
            Event::WaitingForOther { intent, owner } => {
                eprintln!(
                    "{label}intent #{intent} is being worked by another process ({}); waiting",
                    crate::text::escaped(owner)
                );
            }
            Event::Status { status, .. } => {
                if let Some(progress) =
                    &*self.progress.lock().unwrap_or_else(PoisonError::into_inner)
                {
                    progress.state(status.state.name());
                }
            }
            Event::Downloading { written, total, .. } => {
                if let Some(progress) =
                    &*self.progress.lock().unwrap_or_else(PoisonError::into_inner)
                {
                    progress.bytes(*written, *total);
                }
            }
            Event::Started { state, intent } if state.has_job() => {
                self.start(&format!("intent #{intent}"));
            }
            _ => {}
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(progress) = &*self.progress.lock().unwrap_or_else(PoisonError::into_inner) {
            progress.finish();
        }
    }
}

/// Where a command's result goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// The output path on stdout.
    Text,
    /// One JSON document on stdout.
    Json,
    /// Nothing on stdout: the caller reports (resume, batch).
    Quiet,
}

impl Output {
    pub(crate) fn from_json(json: bool) -> Self {
        if json { Output::Json } else { Output::Text }
    }
}

/// Reports a job run to its result.
pub(crate) fn report(done: &Done, output: Output) {
    let out = &done.output;
    eprintln!("wrote {} ({} bytes)", out.display(), done.size);
    let row = &done.record;
    let job = row.job().map(|j| j.to_string());
    let mut stdout = std::io::stdout().lock();
    let _ = match output {
        Output::Json => writeln!(
            stdout,
            "{}",
            json!({
                "job": job,
                "intent": row.intent,
                "state": row.state,
                "output": out,
                "size_bytes": done.size,
                "estimate_usd": row.estimate.map(Usd::as_f64),
                "charged_usd": row.charged_usd.map(Usd::as_f64),
            })
        ),
        Output::Text => writeln!(stdout, "{}", out.display()),
        Output::Quiet => Ok(()),
    };
}

/// `status JOB`, `wait JOB`, `cancel JOB`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum JobCommand {
    /// Show where a job is.
    Status {
        /// PROVIDER:ID, as printed by the job commands.
        job: JobHandle,
    },
    /// Wait for a job and download its result.
    Wait {
        /// PROVIDER:ID.
        job: JobHandle,
        /// Where to write the result (default: where the ledger says, or
        /// JOB-ID.mp4).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace the --out file when it exists.
        #[arg(long)]
        overwrite: bool,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 1800)]
        timeout: u64,
    },
    /// Cancel a job, where the provider allows it.
    Cancel {
        /// PROVIDER:ID.
        job: JobHandle,
    },
}

pub(crate) fn run_job(
    command: JobCommand,
    choice: &ProviderChoice,
    ledger: &LedgerChoice,
    json: bool,
) -> Exit {
    let job = match &command {
        JobCommand::Status { job } | JobCommand::Wait { job, .. } | JobCommand::Cancel { job } => {
            job.clone()
        }
    };
    crate::providers::block_on(async move {
        // A job this ledger recorded is followed where it was created,
        // unless --base-url says otherwise. A lookup never creates a
        // ledger.
        let recorded = match ledger.open_existing() {
            Some(open) => match open.find_job(&job).await {
                Ok(Some(row)) => Some((open, row)),
                _ => None,
            },
            None => None,
        };
        let choice = match &recorded {
            Some((_, row)) if choice.base_url.is_none() => {
                ProviderChoice::hosted(&row.provider, row.base_url.clone()).ok_or(Exit::Usage)
            }
            _ => choice.for_job(&job),
        };
        let choice = match choice {
            Ok(choice) => choice,
            Err(exit) => return exit,
        };
        let session = match Session::open(&choice, false).await {
            Ok(session) => session,
            Err(exit) => return exit,
        };
        let client = &session.client;
        let observe = |state: State, detail: Option<String>| {
            let job = &job;
            let recorded = &recorded;
            async move {
                if let Some((ledger, _)) = recorded
                    && let Err(e) = ledger.observe(job, state, detail).await
                {
                    eprintln!("warning: {e}");
                }
            }
        };
        let exit = match command {
            JobCommand::Status { job } => match client.status(&job).await {
                Ok(status) => {
                    let detail = match &status.state {
                        JobState::Failed { reason, .. } => Some(reason.clone()),
                        _ => None,
                    };
                    observe(State::of(&status.state), detail).await;
                    if json {
                        println!("{}", json!({ "job": job.to_string(), "status": status }));
                    } else {
                        println!(
                            "{}: {}",
                            crate::text::escaped(&job.to_string()),
                            crate::text::escaped(&describe(&status.state))
                        );
                    }
                    Exit::Success
                }
                Err(e) => fail(&e, json),
            },
            JobCommand::Wait {
                job,
                out,
                overwrite,
                timeout,
            } => {
                let ledger = match recorded {
                    Some((ledger, _)) => Ok(ledger),
                    None => session.ledger(ledger),
                };
                match ledger {
                    Ok(ledger) => wait(&ledger, client, &job, out, overwrite, timeout, json).await,
                    Err(exit) => exit,
                }
            }
            JobCommand::Cancel { job } => match client.cancel(&job).await {
                Ok(()) => {
                    observe(
                        State::Cancelled,
                        Some("cancelled by `kling cancel`".to_owned()),
                    )
                    .await;
                    if json {
                        println!("{}", json!({ "job": job.to_string(), "cancelled": true }));
                    } else {
                        println!("{}: cancelled", crate::text::escaped(&job.to_string()));
                    }
                    Exit::Success
                }
                Err(e) => fail(&e, json),
            },
        };
        session.close().await;
        exit
    })
}

/// `wait JOB`: the job's row (recorded now when it was created elsewhere)
/// worked to its result.
async fn wait(
    ledger: &Ledger,
    client: &Client,
    job: &JobHandle,
    out: Option<PathBuf>,
    overwrite: bool,
    timeout: u64,
    json: bool,
) -> Exit {
    let output = out.clone().map_or_else(
        || kling_ledger::Output::NamedByJob(".".into()),
        kling_ledger::Output::File,
    );
    let row = match ledger.adopt(client, job, output, overwrite).await {
        Ok(row) => row,
        Err(e) => return crate::ledger::fail(&e, json),
    };
    if let Some(out) = out
        && row.output.as_deref() != Some(kling_ledger::absolute(&out).as_path())
        && let Err(e) = ledger.redirect(row.intent, &out, overwrite).await
    {
        return crate::ledger::fail(&e, json);
    }
    let view = Arc::new(View::default());
    let options = RunOptions::default()
        .timeout(Duration::from_secs(timeout))
        .observer(view.observer());
    let result = ledger.work(client, row.intent, &options).await;
    view.finish();
    match result {
        Ok(done) => {
            report(&done, Output::from_json(json));
            Exit::Success
        }
        Err(e) => crate::ledger::fail(&e, json),
    }
}

fn describe(state: &JobState) -> String {
    match state {
        JobState::Succeeded { outputs, .. } => format!("succeeded: {}", outputs.join(" ")),
        JobState::Failed { reason, refunded } => {
            let refund = match refunded {
                Some(true) => " (refunded)",
                Some(false) => " (not refunded)",
                None => "",
            };
            format!("failed: {reason}{refund}")
        }
        other => other.name().to_owned(),
    }
}
