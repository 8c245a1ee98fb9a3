//! `kling`: run Kling's Omni video models from a shell.
//!
//! Exit codes (stable, for scripts): 0 success; 1 rejected by local rules,
//! nothing sent; 2 usage error; 3 the provider refused or the job failed;
//! 4 transport error or timeout.
//!
//! The command line is read once ([`flags`], clap's types) and turned into
//! what it means ([`args::Args`]: the output mode, the provider, the ledger
//! and one [`args::Action`]); `main` runs the action, and reports its
//! [`error::Failure`], if any, in one place.

mod args;
mod batch;
mod config;
mod error;
mod flags;
mod follow;
mod history;
mod ledger;
mod logging;
mod output;
mod preflight;
mod progress;
mod providers;
mod sandbox;
mod task;
mod text;
mod validate;
mod view;

use std::process::ExitCode;

use crate::args::{Action, Args};
use crate::error::Failure;
use crate::follow::Follow;

/// The exit codes every command uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
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
    pub(crate) fn code(self) -> u8 {
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
    let args = Args::from(parse());
    let output = args.output;
    logging::install(args.verbose, args.log_format);
    if args.verbose > 0 {
        eprintln!(
            "provider: {}{}; journal: {}",
            args.provider.name.as_str(),
            args.provider
                .base_url
                .as_deref()
                .map(|url| format!(" at {url}"))
                .unwrap_or_default(),
            args.ledger.describe()
        );
    }
    match run(args) {
        Ok(()) => Exit::Success.into(),
        // The one place a failure is reported.
        Err(failure) => failure.report(output).into(),
    }
}

/// The command line, or clap's usage error (exit 2). With `--json`, a
/// usage error is also the error document on stdout.
fn parse() -> flags::Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let json = std::env::args_os().any(|a| a == "--json");
    let parsed = flags::Cli::command()
        .try_get_matches()
        .and_then(|matches| Ok((flags::Cli::from_arg_matches(&matches)?, matches)));
    let (mut cli, matches) = parsed.unwrap_or_else(|e| {
        if json && e.use_stderr() {
            let text = e.to_string();
            let message = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            let failure = Failure::usage(message);
            println!("{}", failure.document());
        }
        e.exit()
    });
    if let Err(failure) = config::apply(&mut cli, &matches) {
        let exit = failure.report(output::Output::new(json));
        std::process::exit(i32::from(exit.code()));
    }
    cli
}

/// Runs what the command asks.
fn run(args: Args) -> Result<(), Failure> {
    let Args {
        output,
        provider,
        ledger,
        action,
        ..
    } = args;
    let exit = |exit: Exit| match exit {
        Exit::Success => Ok(()),
        // The command printed its own account (validate's lines, the
        // sandbox's error).
        exit => Err(Failure::reported(exit)),
    };
    match action {
        Action::Run(task) => task::run(task, &provider, &ledger, output),
        Action::Status(job) => follow::run(job, Follow::Status, &provider, &ledger, output),
        Action::Cancel(job) => follow::run(job, Follow::Cancel, &provider, &ledger, output),
        Action::Wait(wait) => {
            let job = wait.job.clone();
            follow::run(job, Follow::Wait(wait), &provider, &ledger, output)
        }
        Action::Jobs(query) => history::jobs(&query, &ledger, output),
        Action::Resume {
            timeout,
            concurrency,
        } => history::resume(&ledger, &provider.callbacks, timeout, concurrency, output),
        Action::Batch(plan) => batch::run(&plan, &provider, &ledger, output),
        Action::Completions(shell) => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut flags::Cli::command(),
                "kling",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Action::Providers => exit(providers::list(output.is_json())),
        Action::Validate(paths) => exit(validate::run(&paths, output.is_json())),
        Action::Sandbox(args) => exit(sandbox::run(&args, output.is_json())),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::flags::Cli::command().debug_assert();
    }
}
