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

/// The ledger named by `--journal` or `KLING_JOURNAL` (a SQLite file, or a
/// `postgres://` URL for a ledger shared by many machines), or the default
/// file.
#[derive(Clone, Debug, Default)]
pub(crate) struct LedgerChoice {
    pub(crate) path: Option<PathBuf>,
}

/// Where a ledger is.
enum Journal {
    File(PathBuf),
    Postgres(String),
}

impl LedgerChoice {
    fn journal(&self) -> Option<Journal> {
        let path = self.path.clone().or_else(default_path)?;
        match path.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(Journal::Postgres(url.to_owned()))
            }
            _ => Some(Journal::File(path)),
        }
    }

    /// Where it is, for messages: a URL never with its password.
    pub(crate) fn describe(&self) -> String {
        match self.journal() {
            None => "none (no data directory)".to_owned(),
            Some(Journal::File(path)) => path.display().to_string(),
            Some(Journal::Postgres(url)) => kling_ledger::redacted_url(&url),
        }
    }

    /// Opens it, or says why not and what to do.
    pub(crate) async fn open(&self) -> Result<Ledger, Failure> {
        let opened = match self.journal() {
            None => {
                return Err(Failure::usage(
                    "no data directory is known for the job ledger (HOME is not set); pass \
                     --journal PATH or set KLING_JOURNAL",
                ));
            }
            Some(Journal::File(path)) => Ledger::open(&path),
            Some(Journal::Postgres(url)) => Ledger::connect(&url).await,
        };
        opened.map_err(|e| Failure::from(&e).with_exit(crate::Exit::Usage))
    }

    /// Opens it only when it exists: a lookup never creates a ledger file.
    pub(crate) async fn open_existing(&self) -> Option<Ledger> {
        match self.journal()? {
            Journal::File(path) if path.exists() => Ledger::open(path).ok(),
            Journal::File(_) => None,
            Journal::Postgres(url) => Ledger::connect(&url).await.ok(),
        }
    }
}
