//! `kling`: run Kling's Omni video models from a shell.
//!
//! Exit codes (stable, for scripts): 0 success; 1 rejected by local rules,
//! nothing sent; 2 usage error; 3 the provider refused or the job failed;
//! 4 transport error or timeout.

mod sandbox;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run Kling's Omni video models (O1, O3) on ShortAPI, AI/ML API or Oxen.ai.
#[derive(Debug, Parser)]
#[command(name = "kling", version, about, propagate_version = true)]
struct Cli {
    /// Print JSON on stdout instead of text (one document, or one object a
    /// line for commands over several inputs).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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

    /// Run the offline sandbox: ShortAPI, AI/ML API and Oxen.ai on one
    /// loopback port, under /shortapi, /aimlapi and /oxen, until interrupted.
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
    /// A transport error: here, the sandbox could not listen.
    Transport,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(match exit {
            Exit::Success => 0,
            Exit::Rejected => 1,
            Exit::Transport => 4,
        })
    }
}

fn main() -> ExitCode {
    // clap exits with status 2 on usage errors.
    let cli = Cli::parse();
    let exit = match cli.command {
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
