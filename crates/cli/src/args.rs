//! What the command line means, built once from [`crate::flags`]: the
//! output mode, the provider and ledger chosen, and one [`Action`] with
//! everything it needs. Nothing here does anything; `main` runs the action.

use std::path::PathBuf;
use std::time::Duration;

use kling::{AnimateRequest, ComposeRequest, EditRequest, JobHandle, ReferRequest, Request, Usd};

use crate::flags::{
    BatchArgs, Cli, Command, ElementArg, JobCommand, JobFlags, JobsAction, JobsArgs,
    PreflightFlags, TaskCommand, media,
};
use crate::ledger::LedgerChoice;
use crate::output::Output;
use crate::providers::{CallbackChoice, ProviderChoice, RequestChoice};
use crate::sandbox;

/// The command, understood.
pub(crate) struct Args {
    /// Text or JSON on stdout.
    pub(crate) output: Output,
    /// The provider and where to reach it.
    pub(crate) provider: ProviderChoice,
    /// The ledger.
    pub(crate) ledger: LedgerChoice,
    /// Say more on stderr.
    pub(crate) verbose: u8,
    pub(crate) log_format: crate::logging::LogFormat,
    /// What to do.
    pub(crate) action: Action,
}

/// What to do.
pub(crate) enum Action {
    /// Run one of the four tasks.
    Run(TaskRun),
    /// Show where a job is.
    Status(JobHandle),
    /// Wait for a job and download its result.
    Wait(WaitRun),
    /// Cancel a job.
    Cancel(JobHandle),
    /// List the ledger, or change a row of it.
    Jobs(JobsQuery),
    /// Finish what the ledger holds unfinished.
    Resume {
        timeout: Duration,
        concurrency: usize,
    },
    /// Run a batch file.
    Batch(BatchPlan),
    /// Print shell completions.
    Completions(clap_complete::Shell),
    /// List the providers' offerings.
    Providers,
    /// Check local files against the rules.
    Validate(Vec<PathBuf>),
    /// Serve the sandbox.
    Sandbox(sandbox::Args),
}

/// One task run: the request and how it is run.
pub(crate) struct TaskRun {
    pub(crate) request: Request,
    /// `--out`; without it, a name made from the job id in the current
    /// directory.
    pub(crate) out: Option<PathBuf>,
    pub(crate) overwrite: bool,
    pub(crate) no_wait: bool,
    pub(crate) dry_run: bool,
    pub(crate) max_cost: Option<Usd>,
    pub(crate) timeout: Duration,
    pub(crate) preflight: PreflightFlags,
}

/// `wait JOB`.
pub(crate) struct WaitRun {
    pub(crate) job: JobHandle,
    pub(crate) out: Option<PathBuf>,
    pub(crate) overwrite: bool,
    pub(crate) timeout: Duration,
}

/// `jobs`, `jobs attach`, `jobs forget`.
pub(crate) enum JobsQuery {
    List {
        summary: bool,
        since: Option<i64>,
        until: Option<i64>,
    },
    Attach {
        intent: i64,
        job: JobHandle,
    },
    Forget {
        intent: i64,
    },
}

/// `batch FILE`.
pub(crate) struct BatchPlan {
    pub(crate) file: PathBuf,
    pub(crate) concurrency: usize,
    pub(crate) out_dir: PathBuf,
    pub(crate) overwrite: bool,
    pub(crate) retry_failed: bool,
    pub(crate) lease: Duration,
    pub(crate) timeout: Duration,
    pub(crate) preflight: PreflightFlags,
}

impl From<Cli> for Args {
    fn from(cli: Cli) -> Self {
        let action = match cli.command {
            Command::Task(task) => Action::Run(TaskRun::from(task)),
            Command::Job(JobCommand::Status { job }) => Action::Status(job),
            Command::Job(JobCommand::Cancel { job }) => Action::Cancel(job),
            Command::Job(JobCommand::Wait {
                job,
                out,
                overwrite,
                timeout,
            }) => Action::Wait(WaitRun {
                job,
                out,
                overwrite,
                timeout: Duration::from_secs(timeout),
            }),
            Command::Jobs(args) => Action::Jobs(JobsQuery::from(args)),
            Command::Resume {
                timeout,
                concurrency,
            } => Action::Resume {
                timeout: Duration::from_secs(timeout),
                concurrency: concurrency as usize,
            },
            Command::Batch(args) => Action::Batch(BatchPlan::from(args)),
            Command::Completions { shell } => Action::Completions(shell),
            Command::Providers => Action::Providers,
            Command::Validate { paths } => Action::Validate(paths),
            Command::Sandbox(args) => Action::Sandbox(args),
        };
        Args {
            output: Output::new(cli.json),
            provider: ProviderChoice {
                name: cli.provider,
                base_url: cli.base_url,
                upload_url: cli.upload_url,
                upload_expiry: Duration::from_secs(cli.upload_expiry),
                callbacks: CallbackChoice::new(cli.callback_listen, cli.callback_url),
                requests: RequestChoice {
                    timeout: Duration::from_secs(cli.request_timeout),
                    attempts: cli.attempts,
                },
            },
            ledger: LedgerChoice { path: cli.journal },
            verbose: cli.verbose,
            log_format: cli.log_format,
            action,
        }
    }
}

impl From<TaskCommand> for TaskRun {
    fn from(task: TaskCommand) -> Self {
        let elements = |list: Vec<ElementArg>| list.into_iter().map(|e| e.0);
        let (request, flags): (Request, JobFlags) = match task {
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
        };
        TaskRun {
            request,
            out: flags.out,
            overwrite: flags.overwrite,
            no_wait: flags.no_wait,
            dry_run: flags.dry_run,
            max_cost: flags.max_cost,
            timeout: Duration::from_secs(flags.timeout),
            preflight: flags.preflight,
        }
    }
}

impl From<JobsArgs> for JobsQuery {
    fn from(args: JobsArgs) -> Self {
        match args.action {
            Some(JobsAction::Attach { intent, job }) => JobsQuery::Attach { intent, job },
            Some(JobsAction::Forget { intent }) => JobsQuery::Forget { intent },
            None => JobsQuery::List {
                summary: args.summary,
                since: args.since,
                until: args.until,
            },
        }
    }
}

impl From<BatchArgs> for BatchPlan {
    fn from(args: BatchArgs) -> Self {
        BatchPlan {
            file: args.file,
            concurrency: args.concurrency as usize,
            out_dir: args.out_dir,
            overwrite: args.overwrite,
            retry_failed: args.retry_failed,
            lease: Duration::from_secs(args.lease),
            timeout: Duration::from_secs(args.timeout),
            preflight: args.preflight,
        }
    }
}
