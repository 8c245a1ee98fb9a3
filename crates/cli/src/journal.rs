//! The job journal: one SQLite row per intent to create a job, written
//! before the create request, so that no paid job is ever lost or created
//! twice.
//!
//! A row goes through these states:
//!
//! ```text
//! intent ──create answered──▶ submitted ─▶ queued ─▶ running ─▶ succeeded ─▶ downloaded
//!   │                                                   └──────▶ failed | cancelled
//!   ├──refused, or never left──▶ not_sent
//!   └──may have reached the provider──▶ may_exist
//! ```
//!
//! `intent` and `may_exist` rows are jobs that may exist without our
//! knowing their id: `kling resume` reports them and never creates them
//! again. Rows with an id and no output yet are resumed.
//!
//! Several `kling` processes may share a journal: it runs in WAL mode,
//! waits for a busy lock, and every write is one transaction.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kling::{JobHandle, JobState, Request, RequestSpec};
use rusqlite::{Connection, OptionalExtension as _, params};

/// Where the journal lives when neither `--journal` nor `KLING_JOURNAL`
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

/// The journal named by `--journal` or `KLING_JOURNAL`, or the default.
#[derive(Clone, Debug, Default)]
pub(crate) struct JournalChoice {
    pub(crate) path: Option<PathBuf>,
}

impl JournalChoice {
    /// Opens it, or says why not and what to do.
    pub(crate) fn open(&self) -> std::result::Result<Journal, crate::Exit> {
        let Some(path) = self.path.clone().or_else(default_path) else {
            eprintln!(
                "error: no data directory is known for the job journal (HOME is not set); pass \
                 --journal PATH or set KLING_JOURNAL"
            );
            return Err(crate::Exit::Usage);
        };
        Journal::open(&path).map_err(|e| {
            eprintln!("error: {e}; pass --journal PATH to use another file");
            crate::Exit::Usage
        })
    }
}

/// A row's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Intent,
    NotSent,
    MayExist,
    Submitted,
    Queued,
    Running,
    Succeeded,
    Downloaded,
    Failed,
    Cancelled,
}

impl Stage {
    const ALL: [Stage; 10] = [
        Stage::Intent,
        Stage::NotSent,
        Stage::MayExist,
        Stage::Submitted,
        Stage::Queued,
        Stage::Running,
        Stage::Succeeded,
        Stage::Downloaded,
        Stage::Failed,
        Stage::Cancelled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Intent => "intent",
            Stage::NotSent => "not_sent",
            Stage::MayExist => "may_exist",
            Stage::Submitted => "submitted",
            Stage::Queued => "queued",
            Stage::Running => "running",
            Stage::Succeeded => "succeeded",
            Stage::Downloaded => "downloaded",
            Stage::Failed => "failed",
            Stage::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Stage {
        Stage::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or(Stage::MayExist)
    }

    /// A job may exist but its id is unknown: report it, never re-create.
    pub(crate) fn id_unknown(self) -> bool {
        matches!(self, Stage::Intent | Stage::MayExist)
    }

    /// A job with an id whose result is not on disk yet.
    pub(crate) fn resumable(self) -> bool {
        matches!(
            self,
            Stage::Submitted | Stage::Queued | Stage::Running | Stage::Succeeded
        )
    }

    fn of(state: &JobState) -> Stage {
        match state {
            JobState::Queued => Stage::Queued,
            JobState::Succeeded { .. } => Stage::Succeeded,
            JobState::Failed { .. } => Stage::Failed,
            JobState::Cancelled => Stage::Cancelled,
            _ => Stage::Running,
        }
    }
}

/// One row.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) intent: i64,
    pub(crate) created_at: u64,
    pub(crate) provider: String,
    pub(crate) base_url: Option<String>,
    pub(crate) model: String,
    pub(crate) task: String,
    pub(crate) fingerprint: String,
    pub(crate) job_id: Option<String>,
    pub(crate) stage: Stage,
    pub(crate) output: Option<PathBuf>,
    pub(crate) estimate_usd: Option<f64>,
    pub(crate) detail: Option<String>,
    pub(crate) batch_line: Option<i64>,
}

impl Entry {
    /// `provider:id`, when the id is known.
    pub(crate) fn job(&self) -> Option<JobHandle> {
        let id = self.job_id.as_ref()?;
        Some(JobHandle::new(self.provider.clone(), id.clone()).with_model(self.model.clone()))
    }

    /// How the row is named on screen: its job, or its intent number.
    pub(crate) fn name(&self) -> String {
        self.job()
            .map_or_else(|| format!("intent #{}", self.intent), |job| job.to_string())
    }
}

/// What is known before the create request.
pub(crate) struct Intent<'a> {
    pub(crate) provider: &'a str,
    pub(crate) base_url: Option<&'a str>,
    pub(crate) model: &'a str,
    pub(crate) request: &'a Request,
    pub(crate) estimate_usd: Option<f64>,
    pub(crate) output: Option<&'a Path>,
    /// The batch file and line this intent comes from.
    pub(crate) batch: Option<(&'a str, i64)>,
}

/// A path as recorded: absolute, so that it means the same from any
/// directory `kling resume` runs in.
fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms, unlike
/// `DefaultHasher`, so a fingerprint written today matches tomorrow's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The request as recorded: its serialized form, with local paths made
/// absolute so that the record means the same from any directory.
pub(crate) fn recorded(request: &Request) -> String {
    let request = request.clone().map_media(|_, media| match media {
        kling::Media::File(path) => kling::Media::File(std::path::absolute(&path).unwrap_or(path)),
        other => other,
    });
    serde_json::to_string(&RequestSpec::from(request)).unwrap_or_default()
}

/// What identifies an intent: the provider, where it is reached, and the
/// request.
pub(crate) fn fingerprint(provider: &str, base_url: Option<&str>, request: &Request) -> String {
    let text = format!(
        "{provider}\n{}\n{}",
        base_url.unwrap_or_default(),
        recorded(request)
    );
    format!("{:016x}", fnv1a(text.as_bytes()))
}

/// The journal, shared by the tasks of one process.
pub(crate) struct Journal {
    path: PathBuf,
    connection: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    intent       INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    provider     TEXT NOT NULL,
    base_url     TEXT,
    model        TEXT NOT NULL,
    task         TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    request      TEXT NOT NULL,
    batch        TEXT,
    batch_line   INTEGER,
    job_id       TEXT,
    state        TEXT NOT NULL,
    output       TEXT,
    estimate_usd REAL,
    detail       TEXT
);
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs (batch, batch_line);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
";

const COLUMNS: &str = "intent, created_at, provider, base_url, model, task, fingerprint, job_id, \
                       state, output, estimate_usd, detail, batch_line";

fn entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        intent: row.get(0)?,
        created_at: row.get::<_, i64>(1)?.try_into().unwrap_or(0),
        provider: row.get(2)?,
        base_url: row.get(3)?,
        model: row.get(4)?,
        task: row.get(5)?,
        fingerprint: row.get(6)?,
        job_id: row.get(7)?,
        stage: Stage::parse(&row.get::<_, String>(8)?),
        output: row.get::<_, Option<String>>(9)?.map(PathBuf::from),
        estimate_usd: row.get(10)?,
        detail: row.get(11)?,
        batch_line: row.get(12)?,
    })
}

/// A journal error, said with the file it concerns.
#[derive(Debug)]
pub(crate) struct JournalError(String);

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, JournalError>;

impl Journal {
    /// Opens (creating when needed) the journal at `path`.
    pub(crate) fn open(path: &Path) -> Result<Journal> {
        let fail = |e: &dyn std::fmt::Display| {
            JournalError(format!("cannot open the journal {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
        let connection = Connection::open(path).map_err(|e| fail(&e))?;
        connection
            .busy_timeout(Duration::from_secs(30))
            .map_err(|e| fail(&e))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| fail(&e))?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| fail(&e))?;
        connection.execute_batch(SCHEMA).map_err(|e| fail(&e))?;
        Ok(Journal {
            path: path.to_owned(),
            connection: Mutex::new(connection),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, e: &rusqlite::Error) -> JournalError {
        JournalError(format!("the journal {}: {e}", self.path.display()))
    }

    /// Records an intent, before anything is sent. Returns its number.
    pub(crate) fn intent(&self, intent: &Intent<'_>) -> Result<i64> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(|e| self.fail(&e))?;
        let at = now();
        let (batch, line) = intent.batch.unzip();
        transaction
            .execute(
                "INSERT INTO jobs (created_at, updated_at, provider, base_url, model, task, \
                 fingerprint, request, batch, batch_line, state, output, estimate_usd) \
                 VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    i64::try_from(at).unwrap_or(i64::MAX),
                    intent.provider,
                    intent.base_url,
                    intent.model,
                    intent.request.task().as_str(),
                    fingerprint(intent.provider, intent.base_url, intent.request),
                    recorded(intent.request),
                    batch,
                    line,
                    Stage::Intent.as_str(),
                    intent.output.map(shown),
                    intent.estimate_usd,
                ],
            )
            .map_err(|e| self.fail(&e))?;
        let row = transaction.last_insert_rowid();
        transaction.commit().map_err(|e| self.fail(&e))?;
        Ok(row)
    }

    fn update(&self, sql: &str, values: &[&dyn rusqlite::ToSql]) -> Result<()> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(|e| self.fail(&e))?;
        transaction
            .execute(sql, values)
            .map_err(|e| self.fail(&e))?;
        transaction.commit().map_err(|e| self.fail(&e))
    }

    fn stamp() -> i64 {
        i64::try_from(now()).unwrap_or(i64::MAX)
    }

    /// The provider answered the create with `job`; the result goes to
    /// `output`.
    pub(crate) fn submitted(&self, intent: i64, job: &JobHandle, output: &Path) -> Result<()> {
        self.update(
            "UPDATE jobs SET job_id = ?2, state = ?3, output = ?4, updated_at = ?5 WHERE intent = ?1",
            &[
                &intent,
                &job.id,
                &Stage::Submitted.as_str(),
                &shown(output),
                &Self::stamp(),
            ],
        )
    }

    /// Sets a row's state, with what explains it.
    pub(crate) fn stage(&self, intent: i64, stage: Stage, detail: Option<&str>) -> Result<()> {
        self.update(
            "UPDATE jobs SET state = ?2, detail = COALESCE(?3, detail), updated_at = ?4 \
             WHERE intent = ?1",
            &[&intent, &stage.as_str(), &detail, &Self::stamp()],
        )
    }

    /// Records a status seen while waiting.
    pub(crate) fn status(&self, intent: i64, state: &JobState) -> Result<()> {
        let detail = match state {
            JobState::Failed { reason, .. } => Some(reason.clone()),
            JobState::Succeeded { outputs, .. } => Some(outputs.join(" ")),
            _ => None,
        };
        self.stage(intent, Stage::of(state), detail.as_deref())
    }

    /// The result is on disk.
    pub(crate) fn downloaded(&self, intent: i64, output: &Path) -> Result<()> {
        self.update(
            "UPDATE jobs SET state = ?2, output = ?3, updated_at = ?4 WHERE intent = ?1",
            &[
                &intent,
                &Stage::Downloaded.as_str(),
                &shown(output),
                &Self::stamp(),
            ],
        )
    }

    fn select(&self, filter: &str, values: &[&dyn rusqlite::ToSql]) -> Result<Vec<Entry>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!("SELECT {COLUMNS} FROM jobs {filter}"))
            .map_err(|e| self.fail(&e))?;
        let rows = statement
            .query_map(values, entry)
            .map_err(|e| self.fail(&e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.fail(&e))
    }

    /// Every row, newest first.
    pub(crate) fn all(&self) -> Result<Vec<Entry>> {
        self.select("ORDER BY intent DESC", &[])
    }

    /// Rows that are not finished: ids unknown, or results not on disk.
    pub(crate) fn unfinished(&self) -> Result<Vec<Entry>> {
        self.select(
            "WHERE state IN ('intent', 'may_exist', 'submitted', 'queued', 'running', \
             'succeeded') ORDER BY intent",
            &[],
        )
    }

    /// The row of `job`, when this journal recorded it.
    pub(crate) fn find_job(&self, job: &JobHandle) -> Result<Option<Entry>> {
        Ok(self
            .select(
                "WHERE provider = ?1 AND job_id = ?2 ORDER BY intent DESC LIMIT 1",
                &[&job.provider, &job.id],
            )?
            .into_iter()
            .next())
    }

    /// The latest row for line `line` of batch file `batch`.
    pub(crate) fn batch_line(&self, batch: &str, line: i64) -> Result<Option<Entry>> {
        let connection = self.lock();
        connection
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM jobs WHERE batch = ?1 AND batch_line = ?2 \
                     ORDER BY intent DESC LIMIT 1"
                ),
                params![batch, line],
                entry,
            )
            .optional()
            .map_err(|e| self.fail(&e))
    }
}

#[cfg(test)]
mod tests {
    use kling::{EditRequest, Media};

    use super::*;

    fn request() -> Request {
        EditRequest::new(Media::url("https://example.com/a.mp4"), "snow").into()
    }

    #[test]
    fn a_row_goes_from_intent_to_downloaded() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("deep/j.sqlite3")).unwrap();
        let request = request();
        let intent = journal
            .intent(&Intent {
                provider: "shortapi",
                base_url: None,
                model: "kwaivgi/kling-o1/video-to-video",
                request: &request,
                estimate_usd: Some(0.715),
                output: None,
                batch: Some(("/b.jsonl", 3)),
            })
            .unwrap();
        let row = &journal.unfinished().unwrap()[0];
        assert_eq!((row.intent, row.stage), (intent, Stage::Intent));
        assert!(row.stage.id_unknown());
        assert_eq!(row.name(), format!("intent #{intent}"));

        let job = JobHandle::new("shortapi", "j1");
        journal
            .submitted(intent, &job, Path::new("/tmp/out.mp4"))
            .unwrap();
        journal.status(intent, &JobState::Running).unwrap();
        let row = journal.batch_line("/b.jsonl", 3).unwrap().unwrap();
        assert_eq!(row.stage, Stage::Running);
        assert_eq!(row.name(), "shortapi:j1");
        assert!(row.stage.resumable());

        journal
            .downloaded(intent, Path::new("/tmp/out.mp4"))
            .unwrap();
        assert!(journal.unfinished().unwrap().is_empty());
        assert_eq!(journal.all().unwrap()[0].stage, Stage::Downloaded);
    }

    #[test]
    fn fingerprints_are_stable_and_tell_requests_apart() {
        let a = fingerprint("shortapi", None, &request());
        assert_eq!(a, fingerprint("shortapi", None, &request()));
        assert_ne!(a, fingerprint("oxen", None, &request()));
        assert_ne!(
            a,
            fingerprint("shortapi", Some("http://127.0.0.1:1/shortapi"), &request())
        );
        // FNV-1a's published test vector: stable across platforms.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn two_processes_can_share_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        let (first, second) = (Journal::open(&path).unwrap(), Journal::open(&path).unwrap());
        let request = request();
        let intent = |journal: &Journal| {
            journal
                .intent(&Intent {
                    provider: "oxen",
                    base_url: None,
                    model: "m",
                    request: &request,
                    estimate_usd: None,
                    output: None,
                    batch: None,
                })
                .unwrap()
        };
        let (a, b) = (intent(&first), intent(&second));
        assert_ne!(a, b);
        assert_eq!(first.all().unwrap().len(), 2);
        assert_eq!(second.all().unwrap().len(), 2);
    }
}
