//! The embedded backend: one SQLite file, shared by processes (WAL mode,
//! a busy timeout, every step one `IMMEDIATE` transaction).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use crate::State;
use crate::record::Record;
use crate::store::{
    Change, Claim, Filter, Guard, INSERT_COLUMNS, Left, NewRecord, PastCharges, Queue, Store,
    StoreError, StoreResult, UNFINISHED, queued, values_clause,
};

/// The schema version this code writes (`PRAGMA user_version`). Version 1
/// is the journal of kling 0.1 (no version set, rows keyed by number);
/// version 3 adds the index by which batch workers take the next line;
/// version 4 records when a provider called back (`callback_at`).
const VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE jobs (
    intent                 INTEGER PRIMARY KEY AUTOINCREMENT,
    identity               TEXT NOT NULL,
    attempt                INTEGER NOT NULL DEFAULT 1,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    provider               TEXT NOT NULL,
    base_url               TEXT NOT NULL DEFAULT '',
    model                  TEXT NOT NULL,
    task                   TEXT NOT NULL,
    request                TEXT NOT NULL,
    sent_request           TEXT,
    seconds                INTEGER,
    batch                  TEXT,
    batch_line             INTEGER,
    job_id                 TEXT,
    state                  TEXT NOT NULL,
    resend                 INTEGER NOT NULL DEFAULT 0,
    output                 TEXT,
    overwrite              INTEGER NOT NULL DEFAULT 0,
    output_dir             TEXT,
    host                   TEXT,
    estimate_micros        INTEGER,
    charged_usd_micros     INTEGER,
    charged_credits_micros INTEGER,
    detail                 TEXT,
    sending_at             INTEGER,
    claim_owner            TEXT,
    claim_until            INTEGER,
    callback_at            INTEGER,
    UNIQUE (identity, attempt)
);
CREATE UNIQUE INDEX jobs_job ON jobs (provider, base_url, job_id) WHERE job_id IS NOT NULL;
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_batch_line ON jobs (batch, batch_line);
";

/// Version 2 to 3.
const FROM_VERSION_2: &str =
    "CREATE INDEX IF NOT EXISTS jobs_batch_line ON jobs (batch, batch_line);";

/// Version 3 to 4.
const FROM_VERSION_3: &str = "ALTER TABLE jobs ADD COLUMN callback_at INTEGER;";

/// Version 1's rows, carried over: each keeps its number, state and
/// estimate; its identity is its old number, so nothing new matches it by
/// accident.
const FROM_VERSION_1: &str = "
ALTER TABLE jobs RENAME TO jobs_v1;
DROP INDEX IF EXISTS jobs_batch;
DROP INDEX IF EXISTS jobs_state;
{SCHEMA}
INSERT INTO jobs (intent, identity, attempt, created_at, updated_at, provider, base_url, model,
                  task, request, batch, batch_line, job_id, state, resend, output,
                  estimate_micros, detail)
SELECT intent, 'v1:' || intent, 1, created_at, updated_at, provider, COALESCE(base_url, ''),
       model, task, request, batch, batch_line, job_id,
       CASE WHEN state = 'intent' THEN 'may_exist' ELSE state END, 0, output,
       CAST(ROUND(estimate_usd * 1000000) AS INTEGER), detail
FROM jobs_v1;
DROP TABLE jobs_v1;
";

const COLUMNS: &str = "intent, identity, attempt, created_at, updated_at, provider, base_url, \
    model, task, request, sent_request, seconds, batch, batch_line, job_id, state, resend, \
    output, output_dir, host, estimate_micros, charged_usd_micros, charged_credits_micros, \
    detail, sending_at, claim_owner, claim_until, overwrite, callback_at";

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let text = |i| row.get::<_, Option<String>>(i);
    let micros = |i| -> rusqlite::Result<Option<u64>> {
        Ok(row
            .get::<_, Option<i64>>(i)?
            .and_then(|v| u64::try_from(v).ok()))
    };
    let state: String = row.get(15)?;
    Ok(Record {
        intent: row.get(0)?,
        identity: row.get(1)?,
        attempt: row.get::<_, i64>(2)?.try_into().unwrap_or(1),
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
        provider: row.get(5)?,
        base_url: text(6)?.filter(|b| !b.is_empty()),
        model: row.get(7)?,
        task: row.get(8)?,
        request: row.get(9)?,
        sent_request: text(10)?,
        seconds: row
            .get::<_, Option<i64>>(11)?
            .and_then(|v| u32::try_from(v).ok()),
        batch: text(12)?,
        batch_line: row.get(13)?,
        job_id: text(14)?,
        // A state this version does not know came from a newer one: treat
        // the row as possibly paid for, never as something to send.
        state: state.parse().unwrap_or(State::MayExist),
        resend: row.get::<_, i64>(16)? != 0,
        output: text(17)?.map(PathBuf::from),
        output_dir: text(18)?.map(PathBuf::from),
        host: text(19)?,
        estimate: micros(20)?.map(kling::Usd::from_micros),
        charged_usd: micros(21)?.map(kling::Usd::from_micros),
        charged_credits_micros: micros(22)?,
        detail: text(23)?,
        sending_at: row.get(24)?,
        claim_owner: text(25)?,
        claim_until: row.get(26)?,
        overwrite: row.get::<_, i64>(27)? != 0,
        callback_at: row.get(28)?,
    })
}

/// A SQLite ledger file.
#[derive(Debug, Clone)]
pub(crate) struct Sqlite {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
    /// Statements run, for [`Store::statements`].
    statements: Arc<AtomicU64>,
}

impl Sqlite {
    /// Opens (creating when needed) the ledger at `path`, migrating an
    /// older schema.
    pub(crate) fn open(path: &Path) -> StoreResult<Sqlite> {
        let location = path.display().to_string();
        let fail = |e: &dyn std::fmt::Display| StoreError {
            location: location.clone(),
            message: e.to_string(),
            conflict: false,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
        let mut connection = Connection::open(path).map_err(|e| fail(&e))?;
        connection
            .busy_timeout(Duration::from_secs(30))
            .map_err(|e| fail(&e))?;
        // Switching to WAL takes the file for a moment, without waiting
        // for the busy timeout: processes opening the ledger together
        // (a fleet starting) try again for as long as the timeout.
        let started = std::time::Instant::now();
        loop {
            match set_up(&mut connection) {
                Ok(()) => break,
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && started.elapsed() < Duration::from_secs(30) =>
                {
                    std::thread::sleep(Duration::from_millis(fastrand::u64(20..120)));
                }
                Err(e) => return Err(fail(&e)),
            }
        }
        Ok(Sqlite {
            path: path.to_owned(),
            connection: Arc::new(Mutex::new(connection)),
            statements: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Runs `step` on the connection off the async threads: a write may
    /// wait for another process's lock.
    async fn run<T: Send + 'static>(
        &self,
        step: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let connection = Arc::clone(&self.connection);
        let statements = Arc::clone(&self.statements);
        let location = self.location();
        let joined = tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            EXTRA_STATEMENTS.set(0);
            let result = step(&mut connection);
            statements.fetch_add(1 + EXTRA_STATEMENTS.take(), Ordering::Relaxed);
            result
        })
        .await;
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError {
                location,
                conflict: matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::ConstraintViolation)
                ),
                message: e.to_string(),
            }),
            Err(e) => Err(StoreError {
                location,
                message: format!("the ledger's worker thread failed: {e}"),
                conflict: false,
            }),
        }
    }
}

/// The connection's settings, and the schema migrated.
fn set_up(connection: &mut Connection) -> rusqlite::Result<()> {
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a row written before a create leaves survives a power cut.
    connection.pragma_update(None, "synchronous", "FULL")?;
    migrate(connection)
}

thread_local! {
    /// Statements a step ran beyond its first, counted on the thread that
    /// runs it (see [`Sqlite::run`]).
    static EXTRA_STATEMENTS: Cell<u64> = const { Cell::new(0) };
}

/// Counts one more statement in the step running on this thread.
fn extra_statement() {
    EXTRA_STATEMENTS.set(EXTRA_STATEMENTS.get() + 1);
}

/// The values of a new row, in [`INSERT_COLUMNS`]'s order.
fn new_values(new: &NewRecord, now: i64) -> Vec<Value> {
    let text = |v: Option<&String>| v.map_or(Value::Null, |v| Value::Text(v.clone()));
    let int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
    vec![
        Value::Text(new.identity.clone()),
        Value::Integer(i64::from(new.attempt)),
        Value::Integer(now),
        Value::Integer(now),
        Value::Text(new.provider.clone()),
        Value::Text(new.base_url.clone().unwrap_or_default()),
        Value::Text(new.model.clone()),
        Value::Text(new.task.clone()),
        Value::Text(new.request.clone()),
        int(new.seconds.map(i64::from)),
        text(new.batch.as_ref()),
        int(new.batch_line),
        Value::Text(new.state.as_str().to_owned()),
        text(new.output.as_ref()),
        text(new.output_dir.as_ref()),
        int(new.estimate_micros.map(to_i64)),
        text(new.job_id.as_ref()),
        Value::Integer(i64::from(new.overwrite)),
    ]
}

/// `1, 2, 3`: row numbers as an SQL list (integers, never text).
fn number_list(numbers: &[i64]) -> String {
    numbers
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` AND intent NOT IN (…)`, or nothing when `skip` is empty (`NOT IN ()`
/// is no SQL, and `NOT IN (NULL)` matches no row).
fn skipping(skip: &[i64]) -> String {
    if skip.is_empty() {
        String::new()
    } else {
        format!(" AND intent NOT IN ({})", number_list(skip))
    }
}

fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = transaction.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let has_jobs: bool = transaction
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobs'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    match (version, has_jobs) {
        (VERSION, _) => return Ok(()),
        (0, false) => transaction.execute_batch(SCHEMA)?,
        (0 | 1, true) => transaction.execute_batch(&FROM_VERSION_1.replace("{SCHEMA}", SCHEMA))?,
        (2, true) => {
            transaction.execute_batch(FROM_VERSION_2)?;
            transaction.execute_batch(FROM_VERSION_3)?;
        }
        (3, true) => transaction.execute_batch(FROM_VERSION_3)?,
        (newer, _) => {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
                Some(format!(
                    "its schema is version {newer}, newer than this kling knows ({VERSION}); \
                     upgrade kling"
                )),
            ));
        }
    }
    transaction.pragma_update(None, "user_version", VERSION)?;
    transaction.commit()
}

fn select_one(
    connection: &Connection,
    filter: &str,
    values: impl rusqlite::Params,
) -> rusqlite::Result<Option<Record>> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM jobs WHERE {filter}"),
            values,
            record,
        )
        .optional()
}

/// `'a', 'b'`: states as an SQL list (their names are ours, not input).
fn state_list(states: &[State]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for Sqlite {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    async fn insert(&self, new: NewRecord, now: i64) -> StoreResult<(Record, bool)> {
        self.run(move |connection| {
            // One statement; a conflict means the row is there to read.
            let inserted = connection
                .query_row(
                    &format!(
                        "INSERT INTO jobs ({INSERT_COLUMNS}) VALUES {} \
                         ON CONFLICT (identity, attempt) DO NOTHING RETURNING {COLUMNS}",
                        values_clause(1, |n| format!("?{n}"))
                    ),
                    rusqlite::params_from_iter(new_values(&new, now)),
                    record,
                )
                .optional()?;
            if let Some(row) = inserted {
                return Ok((row, true));
            }
            extra_statement();
            let row = select_one(
                connection,
                "identity = ?1 AND attempt = ?2",
                params![new.identity, new.attempt],
            )?
            .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            Ok((row, false))
        })
        .await
    }

    async fn insert_many(&self, new: &[NewRecord], now: i64) -> StoreResult<()> {
        if new.is_empty() {
            return Ok(());
        }
        let values: Vec<Value> = new.iter().flat_map(|n| new_values(n, now)).collect();
        let sql = format!(
            "INSERT INTO jobs ({INSERT_COLUMNS}) VALUES {} ON CONFLICT (identity, attempt) DO NOTHING",
            values_clause(new.len(), |n| format!("?{n}"))
        );
        self.run(move |c| {
            c.execute(&sql, rusqlite::params_from_iter(values))
                .map(drop)
        })
        .await
    }

    async fn get(&self, intent: i64) -> StoreResult<Option<Record>> {
        self.run(move |c| select_one(c, "intent = ?1", [intent]))
            .await
    }

    async fn latest(&self, identity: &str) -> StoreResult<Option<Record>> {
        let identity = identity.to_owned();
        self.run(move |c| select_one(c, "identity = ?1 ORDER BY attempt DESC LIMIT 1", [identity]))
            .await
    }

    async fn get_many(&self, intents: &[i64]) -> StoreResult<Vec<Record>> {
        if intents.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE intent IN ({}) ORDER BY intent",
            number_list(intents)
        );
        self.run(move |c| {
            let mut statement = c.prepare(&sql)?;
            let rows = statement.query_map([], record)?;
            rows.collect()
        })
        .await
    }

    async fn latest_many(&self, identities: &[String]) -> StoreResult<Vec<Record>> {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let identities = identities.to_vec();
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs AS j WHERE identity IN ({}) \
             AND attempt = (SELECT MAX(attempt) FROM jobs WHERE identity = j.identity)",
            (1..=identities.len())
                .map(|n| format!("?{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.run(move |c| {
            let mut statement = c.prepare(&sql)?;
            let rows = statement.query_map(rusqlite::params_from_iter(identities), record)?;
            rows.collect()
        })
        .await
    }

    async fn by_job(&self, provider: &str, job_id: &str) -> StoreResult<Option<Record>> {
        let (provider, job_id) = (provider.to_owned(), job_id.to_owned());
        self.run(move |c| {
            select_one(
                c,
                "provider = ?1 AND job_id = ?2 ORDER BY intent DESC LIMIT 1",
                [provider, job_id],
            )
        })
        .await
    }

    async fn list(&self, filter: &Filter) -> StoreResult<Vec<Record>> {
        let filter = filter.clone();
        self.run(move |c| {
            let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE 1 = 1");
            if filter.unfinished {
                sql.push_str(" AND ");
                sql.push_str(UNFINISHED);
            }
            sql.push_str(" AND (?1 IS NULL OR provider = ?1)");
            sql.push_str(" AND (?2 IS NULL OR created_at >= ?2)");
            sql.push_str(" AND (?3 IS NULL OR created_at < ?3)");
            sql.push_str(" ORDER BY intent");
            let mut statement = c.prepare(&sql)?;
            let rows = statement
                .query_map(params![filter.provider, filter.since, filter.until], record)?;
            rows.collect()
        })
        .await
    }

    async fn past_charges(&self, provider: &str, model: &str) -> StoreResult<PastCharges> {
        let (provider, model) = (provider.to_owned(), model.to_owned());
        self.run(move |c| {
            c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(charged_usd_micros), 0), COALESCE(SUM(seconds), 0) \
                 FROM jobs WHERE provider = ?1 AND model = ?2 \
                 AND charged_usd_micros IS NOT NULL AND seconds > 0",
                params![provider, model],
                |row| {
                    let get = |i| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
                    Ok(PastCharges {
                        jobs: get(0)?,
                        micros: get(1)?,
                        seconds: get(2)?,
                    })
                },
            )
        })
        .await
    }

    async fn job_ids(&self, provider: &str) -> StoreResult<Vec<String>> {
        let provider = provider.to_owned();
        self.run(move |c| {
            let mut statement =
                c.prepare("SELECT job_id FROM jobs WHERE provider = ?1 AND job_id IS NOT NULL")?;
            let ids = statement.query_map([provider], |row| row.get(0))?;
            ids.collect()
        })
        .await
    }

    async fn claim(
        &self,
        intent: i64,
        owner: &str,
        dead: Option<&str>,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Option<Claim>> {
        let owner = owner.to_owned();
        let dead = dead.map(str::to_owned);
        self.run(move |connection| {
            let taken = connection
                .query_row(
                    &format!(
                        "UPDATE jobs SET claim_owner = ?2, claim_until = ?3 WHERE intent = ?1 \
                         AND (claim_owner IS NULL OR claim_owner = ?2 OR claim_owner = ?4 \
                         OR claim_until <= ?5) RETURNING {COLUMNS}"
                    ),
                    params![intent, owner, until_ms, dead, now_ms],
                    record,
                )
                .optional()?;
            if let Some(row) = taken {
                return Ok(Some(Claim::Taken(row)));
            }
            extra_statement();
            Ok(select_one(connection, "intent = ?1", [intent])?.map(Claim::Held))
        })
        .await
    }

    async fn claim_next(
        &self,
        queue: &Queue<'_>,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Option<Record>> {
        let (batch, provider, base_url) = (
            queue.batch.to_owned(),
            queue.provider.to_owned(),
            queue.base_url.to_owned(),
        );
        let owner = owner.to_owned();
        // One statement, so one write lock: two processes never pick the
        // same row.
        let sql = format!(
            "UPDATE jobs SET claim_owner = ?2, claim_until = ?3 WHERE intent = (\
             SELECT intent FROM jobs WHERE batch = ?1 AND {UNFINISHED} AND {} \
             AND (claim_owner IS NULL OR claim_until <= ?4){} \
             ORDER BY batch_line, intent LIMIT 1) RETURNING {COLUMNS}",
            queued("?5", "?6"),
            skipping(queue.skip)
        );
        self.run(move |c| {
            c.query_row(
                &sql,
                params![batch, owner, until_ms, now_ms, provider, base_url],
                record,
            )
            .optional()
        })
        .await
    }

    async fn left(&self, queue: &Queue<'_>, now_ms: i64) -> StoreResult<Left> {
        let (batch, provider, base_url) = (
            queue.batch.to_owned(),
            queue.provider.to_owned(),
            queue.base_url.to_owned(),
        );
        let sql = format!(
            "SELECT COUNT(*), MIN(CASE WHEN claim_until > ?4 THEN claim_until END) FROM jobs \
             WHERE batch = ?1 AND {UNFINISHED} AND {}{}",
            queued("?2", "?3"),
            skipping(queue.skip)
        );
        self.run(move |c| {
            c.query_row(&sql, params![batch, provider, base_url, now_ms], |row| {
                Ok(Left {
                    rows: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                    soonest_lapse: row.get(1)?,
                })
            })
        })
        .await
    }

    async fn renew(&self, tokens: &[String], until_ms: i64) -> StoreResult<u64> {
        if tokens.is_empty() {
            return Ok(0);
        }
        let mut values = vec![Value::Integer(until_ms)];
        values.extend(tokens.iter().cloned().map(Value::Text));
        let sql = format!(
            "UPDATE jobs SET claim_until = ?1 WHERE claim_owner IN ({})",
            (2..=values.len())
                .map(|n| format!("?{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.run(move |c| {
            c.execute(&sql, rusqlite::params_from_iter(values))
                .map(|n| n as u64)
        })
        .await
    }

    async fn release(&self, intent: i64, owner: &str) -> StoreResult<()> {
        let owner = owner.to_owned();
        self.run(move |c| {
            c.execute(
                "UPDATE jobs SET claim_owner = NULL, claim_until = NULL \
                 WHERE intent = ?1 AND claim_owner = ?2",
                params![intent, owner],
            )
            .map(drop)
        })
        .await
    }

    async fn update(
        &self,
        intent: i64,
        guard: Guard<'_>,
        change: &Change,
        now_ms: i64,
    ) -> StoreResult<Option<Record>> {
        let change = change.clone();
        let (owner, states) = match guard {
            Guard::Owner(owner) => (Some(owner.to_owned()), None),
            Guard::Unclaimed(states) => (None, Some(state_list(states))),
            Guard::Orphan => (None, None),
        };
        self.run(move |connection| {
            let text = |v: Option<String>| v.map_or(Value::Null, Value::Text);
            let int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
            let mut values = vec![
                Value::Integer(intent),
                text(change.state.map(|s| s.as_str().to_owned())),
                int(change.resend.map(i64::from)),
                text(change.job_id),
                text(change.sent_request),
                int(change.sending_at),
                text(change.output),
                text(change.host),
                int(change.charged_usd_micros.map(to_i64)),
                int(change.charged_credits_micros.map(to_i64)),
                text(change.detail),
                int(change.batch_line),
                Value::Integer(now_ms / 1000),
                int(change.callback_at),
            ];
            // Our own constant, never input.
            let release = if change.release { "TRUE" } else { "FALSE" };
            let allowed = match (owner, states) {
                (Some(owner), _) => {
                    values.push(Value::Text(owner));
                    "claim_owner = ?15".to_owned()
                }
                (None, Some(states)) => {
                    values.push(Value::Integer(now_ms));
                    format!("state IN ({states}) AND (claim_owner IS NULL OR claim_until <= ?15)")
                }
                (None, None) => {
                    values.push(Value::Null);
                    "?15 IS NULL AND job_id IS NULL AND state IN ('sending', 'may_exist')"
                        .to_owned()
                }
            };
            connection
                .query_row(
                    &format!(
                        "UPDATE jobs SET \
                     state = COALESCE(?2, state), \
                     resend = COALESCE(?3, resend), \
                     job_id = COALESCE(?4, job_id), \
                     sent_request = COALESCE(?5, sent_request), \
                     sending_at = COALESCE(?6, sending_at), \
                     output = COALESCE(?7, output), \
                     host = COALESCE(?8, host), \
                     charged_usd_micros = COALESCE(?9, charged_usd_micros), \
                     charged_credits_micros = COALESCE(?10, charged_credits_micros), \
                     detail = COALESCE(?11, detail), \
                     batch_line = COALESCE(?12, batch_line), \
                     updated_at = ?13, \
                     callback_at = COALESCE(?14, callback_at), \
                     claim_owner = CASE WHEN {release} THEN NULL ELSE claim_owner END, \
                     claim_until = CASE WHEN {release} THEN NULL ELSE claim_until END \
                     WHERE intent = ?1 AND {allowed} \
                     AND (?4 IS NULL OR job_id IS NULL OR job_id = ?4) \
                     RETURNING {COLUMNS}"
                    ),
                    rusqlite::params_from_iter(values),
                    record,
                )
                .optional()
        })
        .await
    }
}
