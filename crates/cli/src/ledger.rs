//! Which ledger a command uses (`--journal`, `KLING_JOURNAL`, or the
//! platform's data directory). Its errors are reported as every other
//! ([`crate::error::Failure`]).

use std::path::PathBuf;

use kling_ledger::Ledger;

use crate::error::Failure;

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
    pub(crate) fn open(&self) -> Result<Ledger, Failure> {
        let Some(path) = self.path() else {
            return Err(Failure::usage(
                "no data directory is known for the job ledger (HOME is not set); pass \
                 --journal PATH or set KLING_JOURNAL",
            ));
        };
        Ledger::open(&path).map_err(|e| Failure::from(&e).with_exit(crate::Exit::Usage))
    }

    /// Opens it only when it exists: a lookup never creates a ledger.
    pub(crate) fn open_existing(&self) -> Option<Ledger> {
        self.path()
            .filter(|path| path.exists())
            .and_then(|path| Ledger::open(path).ok())
    }
}
