//! `edit`, `refer`, `animate`, `compose`, and `status`, `wait`, `cancel`.

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;
use std::time::Duration;

use kling::{
    AnimateRequest, AspectRatio, Client, ComposeRequest, EditRequest, Element, Error, JobHandle,
    JobState, JobStatus, Media, Mode, Model, ReferRequest, Request, Usd, WaitOptions,
};
use serde_json::json;

use crate::Exit;
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

pub(crate) fn run(command: TaskCommand, choice: &ProviderChoice, json: bool) -> Exit {
    let (request, flags) = command.into_request();
    crate::providers::block_on(async move {
        let session = match Session::open(choice, flags.dry_run).await {
            Ok(session) => session,
            Err(exit) => return exit,
        };
        let exit = run_request(&session.client, &request, &flags, json).await;
        session.close().await;
        exit
    })
}

async fn run_request(client: &Client, request: &Request, flags: &JobFlags, json: bool) -> Exit {
    let estimate = match client.estimate(request) {
        Ok(estimate) => estimate,
        Err(e) => return fail(&e),
    };
    if flags.dry_run {
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
        return Exit::Success;
    }
    if let Some(max) = flags.max_cost {
        match estimate.usd {
            Some(usd) if usd > max => {
                eprintln!(
                    "error: the estimate {usd} is above --max-cost {max}; nothing was sent ({estimate})"
                );
                return Exit::Rejected;
            }
            None => {
                eprintln!(
                    "error: --max-cost {max} is set but the cost is not known before sending: {estimate}; nothing was sent"
                );
                return Exit::Rejected;
            }
            Some(_) => {}
        }
    }
    if !json {
        eprintln!("estimate: {estimate}");
    }
    let job = match client.submit(request).await {
        Ok(job) => job,
        Err(e) => return fail(&e),
    };
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
        flags.out.clone(),
        Duration::from_secs(flags.timeout),
        json,
    )
    .await
}

/// Waits for `job`, downloads its result and reports it.
pub(crate) async fn finish(
    client: &Client,
    job: &JobHandle,
    out: Option<PathBuf>,
    timeout: Duration,
    json: bool,
) -> Exit {
    let options = WaitOptions::default().deadline(timeout);
    let started = std::time::Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut last = String::new();
    let waited = client
        .wait_with(job, &options, |status| {
            let state = status.state.name().to_owned();
            if terminal {
                eprint!("\r{job}: {state} ({}s)   ", started.elapsed().as_secs());
            } else if state != last {
                eprintln!("{job}: {state}");
            }
            last = state;
        })
        .await;
    if terminal {
        eprintln!();
    }
    let status = match waited {
        Ok(status) => status,
        Err(e) => return fail(&e),
    };
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{}.mp4", safe_name(&job.id))));
    let size = match client.download(job, &status, &out).await {
        Ok(size) => size,
        Err(e) => return fail(&e),
    };
    report(job, &status, &out, size, json);
    Exit::Success
}

fn report(job: &JobHandle, status: &JobStatus, out: &std::path::Path, size: u64, json: bool) {
    let mut stdout = std::io::stdout().lock();
    let cost = match &status.state {
        JobState::Succeeded { cost, .. } => cost.map(Usd::as_f64),
        _ => None,
    };
    let _ = if json {
        writeln!(
            stdout,
            "{}",
            json!({ "job": job.to_string(), "state": status.state.name(), "output": out, "size_bytes": size, "cost_usd": cost })
        )
    } else {
        writeln!(stdout, "{}", out.display())
    };
    eprintln!("wrote {} ({size} bytes)", out.display());
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

pub(crate) fn run_job(command: JobCommand, choice: &ProviderChoice, json: bool) -> Exit {
    let job = match &command {
        JobCommand::Status { job } | JobCommand::Wait { job, .. } | JobCommand::Cancel { job } => {
            job.clone()
        }
    };
    let choice = match choice.for_job(&job) {
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
                finish(client, &job, out, Duration::from_secs(timeout), json).await
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
