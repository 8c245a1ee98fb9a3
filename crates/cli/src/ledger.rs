//! Which ledger a command uses (`--journal`, `KLING_JOURNAL`, or the
//! platform's data directory), and how a ledger error is reported.

use std::path::PathBuf;

use kling_ledger::{Error, Ledger};

use crate::Exit;

/// Where the ledger lives when neither `--journal` nor `KLING_JOURNAL`
/// says: the platform's data directory.
pub(crate) fn default_path() -> Option<PathBuf> {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    let base = if cfg!(target_os = "windows") {
        std::env::var_os("APPDATA").map(PathBuf::from)
    } else if cfg!(target_os = "macos") {
        home().map(|h| h.join("Library/Application Support"))
    } else {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home().map(|h| h.join(".local/share")))
    };
    base.map(|b| b.join("kling").join("journal.sqlite3"))
}

/// The ledger named by `--journal` or `KLING_JOURNAL`, or the default.
#[derive(Clone, Debug, Default)]
pub(crate) struct LedgerChoice {
    pub(crate) path: Option<PathBuf>,
}

impl LedgerChoice {
    /// The file, when one is known.
    pub(crate) fn path(&self) -> Option<PathBuf> {
        self.path.clone().or_else(default_path)
    }

    /// Opens it, or says why not and what to do.
    pub(crate) fn open(&self) -> Result<Ledger, Exit> {
        let Some(path) = self.path() else {
            eprintln!(
                "error: no data directory is known for the job ledger (HOME is not set); pass \
                 --journal PATH or set KLING_JOURNAL"
            );
            return Err(Exit::Usage);
        };
        Ledger::open(&path).map_err(|e| {
            eprintln!("error: {e}; pass --journal PATH to use another file");
            Exit::Usage
        })
    }

    /// Opens it only when it exists: a lookup never creates a ledger.
    pub(crate) fn open_existing(&self) -> Option<Ledger> {
        self.path()
            .filter(|path| path.exists())
            .and_then(|path| Ledger::open(path).ok())
    }
}

/// The exit code for a ledger error, as the CLI contract says.
pub(crate) fn exit_for(error: &Error) -> Exit {
    match error {
        Error::Kling(e) => crate::jobs::exit_for(e),
        Error::Budget { .. } => Exit::Rejected,
        Error::Refused { .. } => Exit::Refused,
        Error::MayExist { .. } | Error::Unrecorded { .. } | Error::Busy { .. } => Exit::Transport,
        _ => Exit::Usage,
    }
}

/// Reports a ledger error on stderr (and, with `--json`, as one document
/// on stdout), with what to do about it; returns its exit code.
pub(crate) fn fail(error: &Error, json: bool) -> Exit {
    match error {
        Error::Kling(e) => crate::jobs::fail(e, json),
        other => {
            crate::jobs::report_error(
                &other.to_string(),
                error_kind(other),
                other.may_exist(),
                other.job(),
                json,
            );
            if let Error::MayExist { .. } = other {
                eprintln!(
                    "hint: `kling jobs` lists it; `kling resume` looks for it again where the \
                     provider allows it"
                );
            }
            exit_for(other)
        }
    }
}

fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Kling(_) => "provider",
        Error::Store(_) => "ledger",
        Error::Output { .. } => "output",
        Error::Budget { .. } => "budget",
        Error::Unrecorded { .. } => "unrecorded",
        Error::Busy { .. } => "busy",
        Error::Conflict(_) => "conflict",
        Error::MayExist { .. } => "may_exist",
        Error::Refused { .. } => "refused",
        _ => "other",
    }
}
