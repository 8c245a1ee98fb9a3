//! `kling`: run Kling's Omni video models from a shell.
//!
//! Exit codes (stable, for scripts): 0 success; 1 rejected by local rules,
//! nothing sent; 2 usage error; 3 the provider refused or the job failed;
//! 4 transport error or timeout.

mod batch;
mod history;
mod jobs;
mod ledger;
mod progress;
mod providers;
mod sandbox;
mod text;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run Kling's Omni video models (O1, O3) on the providers that host them,
/// or offline on the sandbox.
#[derive(Debug, Parser)]
#[command(name = "kling", version, about, propagate_version = true)]
struct Cli {
    /// Print JSON on stdout instead of text (one document, or one object a
    /// line for commands over several inputs).
    #[arg(long, global = true)]
    json: bool,

    /// The provider: the offline sandbox (the default), or a hosted one
    /// with its API key in its variable.
    #[arg(long, global = true, env = "KLING_PROVIDER", default_value = "sandbox")]
    provider: providers::ProviderName,

    /// The provider's API base URL, to reach a proxy or a running `kling
    /// sandbox`: its address followed by /PROVIDER.
    #[arg(long, global = true, value_name = "URL")]
    base_url: Option<String>,

    /// The job ledger (SQLite): every job is recorded there before it is
    /// sent, and any number of kling processes may share it [default:
    /// kling/journal.sqlite3 in the platform's data directory].
    #[arg(long, global = true, env = "KLING_JOURNAL", value_name = "PATH")]
    journal: Option<PathBuf>,

    /// Say more on stderr: the provider, its URL and the journal used.
    #[arg(short, long, global = true)]
    verbose: bool,

    /// Where local files are uploaded (POST of the bytes, answered with
    /// {"url": …}) for providers that fetch inputs by URL. With a --base-url
    /// on a `kling sandbox`, its /uploads is used.
    #[arg(long, global = true, value_name = "URL")]
    upload_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

// Doc comments here are `--help` text for people at a shell, where
// backticks would show as they are.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Task(jobs::TaskCommand),

    #[command(flatten)]
    Job(jobs::JobCommand),

    /// List the jobs in the ledger: intent, job, provider, task, state, age,
    /// estimate, charge, output; or their totals (--summary); or attach a
    /// job to, or forget, an intent that may exist.
    Jobs(history::JobsArgs),

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
    Batch(batch::Args),

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
    /// Exit status: 0 when every file passes, 1 when any fails.
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

/// The exit codes every command uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Success,
    /// Refused by local rules; nothing was sent.
    Rejected,
    /// A usage error: bad flags, a missing key.
    Usage,
    /// The provider refused, or the job failed.
    Refused,
    /// A transport error or a timeout (a job, if created, may exist).
    Transport,
}

impl Exit {
    /// The process exit status.
    fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Rejected => 1,
            Exit::Usage => 2,
            Exit::Refused => 3,
            Exit::Transport => 4,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

fn main() -> ExitCode {
    // clap exits with status 2 on usage errors.
    let cli = Cli::parse();
    let choice = providers::ProviderChoice {
        name: cli.provider,
        base_url: cli.base_url,
        upload_url: cli.upload_url,
    };
    let journal = ledger::LedgerChoice { path: cli.journal };
    if cli.verbose {
        eprintln!(
            "provider: {}{}; journal: {}",
            choice.name.as_str(),
            choice
                .base_url
                .as_deref()
                .map(|url| format!(" at {url}"))
                .unwrap_or_default(),
            journal.path().map_or_else(
                || "none (no data directory)".to_owned(),
                |p| p.display().to_string()
            )
        );
    }
    let exit = match cli.command {
        Command::Task(task) => jobs::run(task, &choice, &journal, cli.json),
        Command::Job(job) => jobs::run_job(job, &choice, &journal, cli.json),
        Command::Jobs(args) => history::jobs(&args, &journal, cli.json),
        Command::Resume {
            timeout,
            concurrency,
        } => history::resume(
            &journal,
            std::time::Duration::from_secs(timeout),
            concurrency as usize,
            cli.json,
        ),
        Command::Batch(args) => batch::run(&args, &choice, &journal, cli.json),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "kling", &mut std::io::stdout());
            Exit::Success
        }
        Command::Providers => providers::list(cli.json),
        Command::Validate { paths } => validate::run(&paths, cli.json),
        Command::Sandbox(args) => sandbox::run(&args, cli.json),
    };
    exit.into()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
