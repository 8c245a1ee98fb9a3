//! The command line as clap reads it: flags and subcommands, nothing
//! decided yet. [`crate::args`] turns it into what the command means.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use kling::{AspectRatio, Element, JobHandle, Media, Mode, Model, Usd};

use crate::{providers, sandbox};

/// Run Kling's Omni video models (O1, O3) on the providers that host them,
/// or offline on the sandbox.
// Doc comments here are `--help` text: see `Command`.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Parser)]
#[command(name = "kling", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Print JSON on stdout instead of text: one document, and on failure
    /// one error document ({"error": {...}}, with the job when there is
    /// one). validate prints one object per input, a line each; batch and
    /// resume print one summary document that also accounts for the jobs
    /// that failed.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// The provider: the offline sandbox (the default), or a hosted one
    /// with its API key in its variable.
    #[arg(long, global = true, env = "KLING_PROVIDER", default_value = "sandbox")]
    pub(crate) provider: providers::ProviderName,

    /// The provider's API base URL, to reach a proxy or a running `kling
    /// sandbox`: its address followed by /PROVIDER.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) base_url: Option<String>,

    /// The job ledger: every job is recorded there before it is sent. A
    /// SQLite file, shared by the kling processes of one machine, or a
    /// `postgres://USER@HOST/DB` URL, shared by any number of machines
    /// [default: kling/journal.sqlite3 in the platform's data directory].
    #[arg(
        long,
        global = true,
        env = "KLING_JOURNAL",
        // A URL may hold a password: help never shows the value.
        hide_env_values = true,
        value_name = "PATH|URL"
    )]
    pub(crate) journal: Option<PathBuf>,

    /// Say more on stderr: -v the provider, its URL, the journal and what
    /// each job goes through; -vv each request retried and push received;
    /// -vvv everything. RUST_LOG (e.g. RUST_LOG=kling_http=debug) overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// How log lines are written on stderr: text, or one JSON object per
    /// line for machines.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub(crate) log_format: crate::logging::LogFormat,

    /// Where local files are uploaded for providers that fetch inputs by
    /// URL: s3://BUCKET/PREFIX (credentials, region and endpoint from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and
    /// AWS_ENDPOINT_URL; the provider gets a presigned URL), or an endpoint
    /// taking the file's bytes in a POST and answering {"url": …}. With a
    /// --base-url on a `kling sandbox`, its /uploads is used.
    #[arg(
        long = "upload",
        visible_alias = "upload-url",
        global = true,
        value_name = "s3://BUCKET/PREFIX|URL"
    )]
    pub(crate) upload_url: Option<String>,

    /// How long the presigned URLs of s3:// uploads stay valid, in
    /// seconds: long enough for a job to wait in the provider's queue.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u64).range(60..=604_800)
    )]
    pub(crate) upload_expiry: u64,

    /// Listen on ADDR (127.0.0.1:8788; 0.0.0.0:8788 behind a tunnel, with
    /// --callback-url) for providers that call back when a job ends
    /// (ShortAPI): the wait ends at the call, after one status query,
    /// instead of at the next poll. Jobs of other providers are polled.
    #[arg(long, global = true, value_name = "ADDR")]
    pub(crate) callback_listen: Option<std::net::SocketAddr>,

    /// The URL providers call, when it is not http://ADDR of
    /// --callback-listen: behind a tunnel or a proxy,
    /// https://HOST[:PORT][/PATH].
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) callback_url: Option<String>,

    /// How long one request to the provider's API may take, its answer
    /// included, in seconds.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = kling::ApiClient::DEFAULT_REQUEST_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub(crate) request_timeout: u64,

    /// How many times a status query, a cancel or another request that is
    /// safe to repeat is tried on a rate limit, a 5xx or a dropped
    /// connection (1: never again). A create is sent once, whatever this
    /// says.
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = kling::RetryPolicy::default().max_attempts,
        value_parser = clap::value_parser!(u32).range(1..=20)
    )]
    pub(crate) attempts: u32,

    #[command(subcommand)]
    pub(crate) command: Command,
}

// Doc comments here are `--help` text for people at a shell, where
// backticks would show as they are.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    #[command(flatten)]
    Task(TaskCommand),

    #[command(flatten)]
    Job(JobCommand),

    /// List the jobs in the ledger: intent, job, provider, task, state, age,
    /// estimate, charge, output; or their totals (--summary); or attach a
    /// job to, or forget, an intent that may exist.
    Jobs(JobsArgs),

    /// Finish every job the ledger holds unfinished, a few at a time: send
    /// what was interrupted before it left, wait for and download what has
    /// a job, look up what may exist where the provider allows it (never
    /// creating it again).
    Resume {
        /// Give up waiting for a job after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 1800)]
        timeout: u64,
        /// How many jobs are worked at once.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
        concurrency: u32,
    },

    /// Run many requests from a JSON Lines file, a few at a time, through
    /// the journal: running the same file again skips what is done and
    /// resumes what is not.
    ///
    /// Each line is one request in the serialized form, e.g.
    /// {"task": "edit", "video": "in.mp4", "prompt": "Make it snow on @Video1"}
    /// (fields: task, prompt, video, images, elements, keep_audio, duration,
    /// aspect_ratio, model, mode; animate takes its frames as images).
    ///
    /// The file is UTF-8 without a byte order mark, each line at most 1 MiB;
    /// it may be a FIFO (a pipe or <(...)). A file with a line that is not a
    /// request is refused whole, naming each bad line, and nothing is sent
    /// (exit 2; 1 when a line only breaks a rule). With --json, a batch that
    /// ran prints one summary document (its failed lines included), and one
    /// that cannot start prints the error document.
    Batch(BatchArgs),

    /// Print shell completions: kling completions bash > /etc/bash_completion.d/kling
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// List each provider's tasks, models and prices.
    Providers,

    /// Probe local videos and images and check them against the providers'
    /// rules, before uploading or paying.
    ///
    /// Videos must be MP4 or MOV with a video track, 3 to 10 s long, each side
    /// 720 to 2160 px, at most 200 MB. Images must be JPEG, PNG or WebP, each
    /// side at least 300 px, at most 10 MB, aspect ratio 0.4 to 2.5.
    ///
    /// Exit status: 0 when every file passes, 1 when any fails. With --json,
    /// one object per file, a line each, carrying its errors (no error
    /// document).
    Validate {
        /// Files to check. Whether each must be a video or an image is read
        /// from its extension, or else from its content.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },

    /// Run the offline sandbox: every provider's protocol on one loopback
    /// port, each under /PROVIDER, until interrupted.
    ///
    /// Prints the base URL on the first line of stdout. Any non-empty key is
    /// accepted. GET /_sandbox/stats counts what it saw.
    Sandbox(sandbox::Args),
}

/// Flags every job command takes.
#[derive(Debug, clap::Args)]
pub(crate) struct JobFlags {
    /// The model.
    #[arg(long, default_value = "o1")]
    pub(crate) model: Model,
    /// The quality mode.
    #[arg(long, default_value = "pro")]
    pub(crate) mode: Mode,
    /// Where to write the result (default: JOB-ID.mp4 in the current directory).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Replace the --out file when it exists (by default it is refused
    /// before anything is sent).
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Print the job and exit without waiting for it.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// Print the request that would be sent, and its estimate; send nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Refuse to send when the estimate is above this many dollars, or unknown.
    #[arg(long, value_name = "USD")]
    pub(crate) max_cost: Option<Usd>,
    /// Give up waiting after this many seconds (the job may still finish).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub(crate) timeout: u64,
    #[command(flatten)]
    pub(crate) preflight: PreflightFlags,
}

/// How URL inputs are read before anything is sent.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub(crate) struct PreflightFlags {
    /// Refuse URL inputs that cannot be reached or checked (by default a
    /// warning: the provider may reach what this machine cannot).
    #[arg(long, conflicts_with = "no_preflight")]
    pub(crate) strict: bool,
    /// Do not read URL inputs before sending: their length, size and
    /// resolution go unchecked, and their cost unknown.
    #[arg(long)]
    pub(crate) no_preflight: bool,
}

/// `--element FRONT[,REF...]`.
#[derive(Clone, Debug)]
pub(crate) struct ElementArg(pub(crate) Element);

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

pub(crate) fn media(s: &str) -> Media {
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

/// `kling jobs`' flags and actions.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct JobsArgs {
    #[command(subcommand)]
    pub(crate) action: Option<JobsAction>,
    /// Totals of estimates and charges by provider and model instead of
    /// the rows.
    #[arg(long)]
    pub(crate) summary: bool,
    /// Only jobs recorded since then: a duration ago (7d, 12h) or an RFC
    /// 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub(crate) since: Option<i64>,
    /// Only jobs recorded before then: a duration ago or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub(crate) until: Option<i64>,
}

/// What `kling jobs` can do to a row.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum JobsAction {
    /// Adopt a job found in the provider's dashboard for an intent that may
    /// exist (its create's answer was lost); `kling resume` then waits for
    /// it and downloads its result.
    Attach {
        /// The intent number, as `kling jobs` shows it.
        intent: i64,
        /// PROVIDER:ID.
        job: JobHandle,
    },
    /// Release an intent that may exist, once you have checked that the
    /// provider has no job for it: it is no longer reported, and never
    /// sent again.
    Forget {
        /// The intent number.
        intent: i64,
    },
}

/// `7d`, `12h` (that long ago) or an RFC 3339 time, as seconds since the
/// epoch.
fn parse_when(text: &str) -> Result<i64, String> {
    let at = if let Ok(ago) = humantime::parse_duration(text) {
        SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| format!("{text} ago is before the epoch"))?
    } else {
        humantime::parse_rfc3339_weak(text).map_err(|_| {
            format!("{text:?} is neither a duration (7d, 12h) nor a time (2026-11-01T00:00:00Z)")
        })?
    };
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// `kling batch`'s flags.
#[derive(Debug, clap::Args)]
pub(crate) struct BatchArgs {
    /// The requests, one JSON object a line (blank lines and lines starting
    /// with # are skipped).
    #[arg(value_name = "FILE.jsonl")]
    pub(crate) file: PathBuf,
    /// How many jobs run at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) concurrency: u32,
    /// Where results go, as STEM-HASH.mp4 (HASH names the line's request).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) out_dir: PathBuf,
    /// Replace a result file that exists but that the ledger did not write.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Create again the jobs that failed, were cancelled or were refused
    /// in an earlier run.
    #[arg(long)]
    pub(crate) retry_failed: bool,
    /// How long a line stays claimed by a worker that stops renewing it
    /// (a process killed, a machine gone) before another worker takes it
    /// over.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..=86_400))]
    pub(crate) lease: u64,
    /// Give up waiting for a job after this many seconds (it stays in the
    /// ledger for `kling resume`).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub(crate) timeout: u64,
    #[command(flatten)]
    pub(crate) preflight: PreflightFlags,
}
