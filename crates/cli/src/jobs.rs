//! `edit`, `refer`, `animate`, `compose`, and `status`, `wait`, `cancel`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kling::{
    AnimateRequest, AspectRatio, Client, ComposeRequest, EditRequest, Element, Error, Estimate,
    JobHandle, JobState, JobStatus, Media, Mode, Model, ReferRequest, Request, Usd, WaitOptions,
};
use serde_json::json;

use crate::Exit;
use crate::journal::{Intent, Journal, JournalChoice, Stage};
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
        Error::Transport { .. } | Error::Timeout { .. } => Exit::Transport,
        _ => Exit::Refused,
    }
}

/// Reports an error on stderr with what to do about it, and its exit code.
pub(crate) fn fail(error: &Error) -> Exit {
    eprintln!("error: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        eprintln!("  caused by: {inner}");
        cause = inner.source();
    }
    if error.may_have_been_sent() {
        eprintln!(
            "hint: the job may exist at the provider; check there before sending the request again"
        );
    }
    if let Some(job) = error.job() {
        eprintln!("hint: follow the job with `kling wait {job}`");
    }
    exit_for(error)
}

pub(crate) fn run(
    command: TaskCommand,
    choice: &ProviderChoice,
    journal: &JournalChoice,
    json: bool,
) -> Exit {
    let (request, flags) = command.into_request();
    crate::providers::block_on(async move {
        let session = match Session::open(choice, flags.dry_run).await {
            Ok(session) => session,
            Err(exit) => return exit,
        };
        // The in-process sandbox forgets its jobs when this command ends:
        // they cost nothing and cannot be resumed, so they go unrecorded.
        let journal = match session.target() {
            Some(_) if !flags.dry_run => match journal.open() {
                Ok(journal) => Some(journal),
                Err(exit) => return exit,
            },
            _ => None,
        };
        let exit = run_request(&session, journal.as_ref(), &request, &flags, json).await;
        session.close().await;
        exit
    })
}

async fn run_request(
    session: &Session,
    journal: Option<&Journal>,
    request: &Request,
    flags: &JobFlags,
    json: bool,
) -> Exit {
    let client = &session.client;
    let estimate = match client.estimate(request) {
        Ok(estimate) => estimate,
        Err(e) => return fail(&e),
    };
    if flags.dry_run {
        return dry_run(client, request, &estimate, json);
    }
    if let Some(max) = flags.max_cost
        && let Err(exit) = within_budget(&estimate, max)
    {
        return exit;
    }
    if !json {
        eprintln!("estimate: {estimate}");
    }
    let out = flags.out.clone();
    let track = match (journal, session.target()) {
        (Some(journal), Some((provider, base_url))) => {
            let offering = match client.validate(request) {
                Ok(offering) => offering,
                Err(e) => return fail(&e),
            };
            let intent = journal.intent(&Intent {
                provider,
                base_url,
                model: offering.wire_model,
                request,
                estimate_usd: estimate.usd.map(Usd::as_f64),
                output: out.as_deref(),
                batch: None,
            });
            match intent {
                Ok(intent) => Some(Track { journal, intent }),
                Err(e) => {
                    eprintln!(
                        "error: {e}; nothing was sent (a job is sent only once it is recorded)"
                    );
                    return Exit::Usage;
                }
            }
        }
        _ => None,
    };
    let job = match submit(client, request, track).await {
        Ok(job) => job,
        Err(e) => return fail(&e),
    };
    let out = out.unwrap_or_else(|| default_output(&job));
    if let Some(track) = track {
        track.note(|j, i| j.submitted(i, &job, &out));
    }
    if flags.no_wait {
        if json {
            println!(
                "{}",
                json!({ "job": job.to_string(), "state": "submitted", "estimate_usd": estimate.usd.map(Usd::as_f64) })
            );
        } else {
            println!("{job}");
        }
        return Exit::Success;
    }
    eprintln!("job {job} submitted");
    finish(
        client,
        &job,
        &out,
        Duration::from_secs(flags.timeout),
        Output::from_json(json),
        track,
    )
    .await
}

/// `--dry-run`: the call that would be sent and its estimate.
fn dry_run(client: &Client, request: &Request, estimate: &Estimate, json: bool) -> Exit {
    let call = match client.prepare(request) {
        Ok(call) => call,
        Err(e) => return fail(&e),
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
                "estimate_usd": estimate.usd.map(Usd::as_f64),
            })
        );
    } else {
        println!("{} {}", call.method, call.url);
        println!(
            "{}",
            serde_json::to_string_pretty(&call.body).unwrap_or_default()
        );
        println!("estimate: {estimate}");
        eprintln!("dry run: nothing was sent");
    }
    Exit::Success
}

/// `--max-cost`: refuses an estimate above `max`, or an unknown one.
fn within_budget(estimate: &Estimate, max: Usd) -> Result<(), Exit> {
    match estimate.usd {
        Some(usd) if usd > max => {
            eprintln!(
                "error: the estimate {usd} is above --max-cost {max}; nothing was sent ({estimate})"
            );
            Err(Exit::Rejected)
        }
        None => {
            eprintln!(
                "error: --max-cost {max} is set but the cost is not known before sending: {estimate}; nothing was sent"
            );
            Err(Exit::Rejected)
        }
        Some(_) => Ok(()),
    }
}

/// A journal row kept up to date while a job runs.
#[derive(Clone, Copy)]
pub(crate) struct Track<'a> {
    pub(crate) journal: &'a Journal,
    pub(crate) intent: i64,
}

impl Track<'_> {
    /// Applies `write`; a failure is reported and the job goes on: it is
    /// paid for, and its result matters more than its record.
    pub(crate) fn note(
        self,
        write: impl FnOnce(&Journal, i64) -> Result<(), crate::journal::JournalError>,
    ) {
        if let Err(e) = write(self.journal, self.intent) {
            eprintln!("warning: {e}");
        }
    }
}

/// Creates the job once, recording in the journal what became of the
/// intent when the create failed.
pub(crate) async fn submit(
    client: &Client,
    request: &Request,
    track: Option<Track<'_>>,
) -> Result<JobHandle, Error> {
    let submitted = client.submit(request).await;
    if let (Err(e), Some(track)) = (&submitted, track) {
        let stage = if e.may_have_been_sent() {
            Stage::MayExist
        } else {
            Stage::NotSent
        };
        track.note(|j, i| j.stage(i, stage, Some(&e.to_string())));
    }
    submitted
}

/// Where a job's result goes by default: `JOB-ID.mp4` here.
pub(crate) fn default_output(job: &JobHandle) -> PathBuf {
    PathBuf::from(format!("{}.mp4", safe_name(&job.id)))
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

/// Waits for `job`, downloads its result to `out` and reports it, keeping
/// its journal row, if any, up to date.
pub(crate) async fn finish(
    client: &Client,
    job: &JobHandle,
    out: &Path,
    timeout: Duration,
    output: Output,
    track: Option<Track<'_>>,
) -> Exit {
    match follow(client, job, out, timeout, track).await {
        Ok((status, size)) => {
            report(job, &status, out, size, output);
            Exit::Success
        }
        Err(e) => fail(&e),
    }
}

/// Waits for `job` and downloads its result to `out`, showing progress and
/// recording each change in the journal. Returns the final status and the
/// result's size.
pub(crate) async fn follow(
    client: &Client,
    job: &JobHandle,
    out: &Path,
    timeout: Duration,
    track: Option<Track<'_>>,
) -> Result<(JobStatus, u64), Error> {
    let options = WaitOptions::default().deadline(timeout);
    let progress = Progress::new(&job.to_string());
    let mut last = None;
    let waited = client
        .wait_with(job, &options, |status| {
            let name = status.state.name();
            progress.state(name);
            if let Some(track) = track
                && last != Some(name)
            {
                track.note(|j, i| j.status(i, &status.state));
            }
            last = Some(name);
        })
        .await;
    let status = match waited {
        Ok(status) => status,
        Err(e) => {
            progress.finish();
            return Err(e);
        }
    };
    let downloaded = client
        .download_with(job, &status, out, &|written, total| {
            progress.bytes(written, total);
        })
        .await;
    progress.finish();
    let size = downloaded?;
    if let Some(track) = track {
        track.note(|j, i| j.downloaded(i, out));
    }
    Ok((status, size))
}

fn report(job: &JobHandle, status: &JobStatus, out: &Path, size: u64, output: Output) {
    eprintln!("wrote {} ({size} bytes)", out.display());
    let mut stdout = std::io::stdout().lock();
    let cost = status
        .charge
        .or(job.charge)
        .and_then(kling::Charge::usd)
        .map(Usd::as_f64);
    let _ = match output {
        Output::Json => writeln!(
            stdout,
            "{}",
            json!({ "job": job.to_string(), "state": status.state.name(), "output": out, "size_bytes": size, "cost_usd": cost })
        ),
        Output::Text => writeln!(stdout, "{}", out.display()),
        Output::Quiet => Ok(()),
    };
}

/// A job id as a file name: anything but letters, digits, `-` and `_`
/// becomes `_` (AI/ML API ids carry `:` and `/`).
fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
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
        /// Where to write the result (default: JOB-ID.mp4).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
    journal: &JournalChoice,
    json: bool,
) -> Exit {
    let job = match &command {
        JobCommand::Status { job } | JobCommand::Wait { job, .. } | JobCommand::Cancel { job } => {
            job.clone()
        }
    };
    // A job this journal recorded is followed where it was created, unless
    // --base-url says otherwise.
    // Its row is kept up to date by `wait`. A journal that does not exist
    // yet cannot know the job, and is not created for it.
    let recorded = journal
        .path
        .clone()
        .or_else(crate::journal::default_path)
        .filter(|path| path.exists())
        .and_then(|path| Journal::open(&path).ok())
        .and_then(|journal| {
            let entry = journal.find_job(&job).ok().flatten()?;
            Some((journal, entry))
        });
    let choice = match &recorded {
        Some((_, entry)) if choice.base_url.is_none() => {
            ProviderChoice::hosted(&entry.provider, entry.base_url.clone()).ok_or(Exit::Usage)
        }
        _ => choice.for_job(&job),
    };
    let choice = match choice {
        Ok(choice) => choice,
        Err(exit) => return exit,
    };
    crate::providers::block_on(async move {
        let session = match Session::open(&choice, false).await {
            Ok(session) => session,
            Err(exit) => return exit,
        };
        let client = &session.client;
        let exit = match command {
            JobCommand::Status { job } => match client.status(&job).await {
                Ok(status) => {
                    if json {
                        println!("{}", json!({ "job": job.to_string(), "status": status }));
                    } else {
                        println!("{job}: {}", describe(&status.state));
                    }
                    Exit::Success
                }
                Err(e) => fail(&e),
            },
            JobCommand::Wait { job, out, timeout } => {
                let track = recorded.as_ref().map(|(journal, entry)| Track {
                    journal,
                    intent: entry.intent,
                });
                let out = out
                    .or_else(|| recorded.as_ref().and_then(|(_, e)| e.output.clone()))
                    .unwrap_or_else(|| default_output(&job));
                finish(
                    client,
                    &job,
                    &out,
                    Duration::from_secs(timeout),
                    Output::from_json(json),
                    track,
                )
                .await
            }
            JobCommand::Cancel { job } => match client.cancel(&job).await {
                Ok(()) => {
                    if json {
                        println!("{}", json!({ "job": job.to_string(), "cancelled": true }));
                    } else {
                        println!("{job}: cancelled");
                    }
                    Exit::Success
                }
                Err(e) => fail(&e),
            },
        };
        session.close().await;
        exit
    })
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
