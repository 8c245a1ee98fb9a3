//! The embedded backend: one SQLite file, shared by processes (WAL mode,
//! a busy timeout, every step one `IMMEDIATE` transaction).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use crate::State;
use crate::record::Record;
use crate::store::{
    Change, Claim, Filter, Guard, NewRecord, PastCharges, Store, StoreError, StoreResult,
};

/// The schema version this code writes (`PRAGMA user_version`). Version 1
/// is the journal of kling 0.1 (no version set, rows keyed by number).
const VERSION: i64 = 2;

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
    UNIQUE (identity, attempt)
);
CREATE UNIQUE INDEX jobs_job ON jobs (provider, base_url, job_id) WHERE job_id IS NOT NULL;
CREATE INDEX jobs_state ON jobs (state);
";

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
    detail, sending_at, claim_owner, claim_until, overwrite";

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
    })
}

/// A SQLite ledger file.
#[derive(Debug, Clone)]
pub(crate) struct Sqlite {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
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
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| fail(&e))?;
        // FULL: a row written before a create leaves survives a power cut.
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| fail(&e))?;
        migrate(&mut connection).map_err(|e| fail(&e))?;
        Ok(Sqlite {
            path: path.to_owned(),
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `step` on the connection off the async threads: a write may
    /// wait for another process's lock.
    async fn run<T: Send + 'static>(
        &self,
        step: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let connection = Arc::clone(&self.connection);
        let location = self.location();
        let joined = tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            step(&mut connection)
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

    async fn insert(&self, new: NewRecord, now: i64) -> StoreResult<(Record, bool)> {
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let written = transaction.execute(
                "INSERT INTO jobs (identity, attempt, created_at, updated_at, provider, base_url, \
                 model, task, request, seconds, batch, batch_line, state, output, output_dir, \
                 estimate_micros, job_id, overwrite) \
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                 ?17) \
                 ON CONFLICT (identity, attempt) DO NOTHING",
                params![
                    new.identity,
                    new.attempt,
                    now,
                    new.provider,
                    new.base_url.unwrap_or_default(),
                    new.model,
                    new.task,
                    new.request,
                    new.seconds,
                    new.batch,
                    new.batch_line,
                    new.state.as_str(),
                    new.output,
                    new.output_dir,
                    new.estimate_micros.map(to_i64),
                    new.job_id,
                    i64::from(new.overwrite),
                ],
            )?;
            let row = select_one(
                &transaction,
                "identity = ?1 AND attempt = ?2",
                params![new.identity, new.attempt],
            )?
            .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            transaction.commit()?;
            Ok((row, written == 1))
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
                sql.push_str(
                    " AND (state NOT IN ('downloaded', 'failed', 'cancelled', 'not_sent') \
                     OR (state = 'not_sent' AND resend = 1))",
                );
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
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(row) = select_one(&transaction, "intent = ?1", [intent])? else {
                return Ok(None);
            };
            let held = row
                .claim_owner
                .as_deref()
                .is_some_and(|o| o != owner && Some(o) != dead.as_deref())
                && row.claim_until.is_some_and(|until| until > now_ms);
            if held {
                return Ok(Some(Claim::Held(row)));
            }
            transaction.execute(
                "UPDATE jobs SET claim_owner = ?2, claim_until = ?3 WHERE intent = ?1",
                params![intent, owner, until_ms],
            )?;
            transaction.commit()?;
            Ok(Some(Claim::Taken(row)))
        })
        .await
    }

    async fn renew(&self, tokens: &[String], until_ms: i64) -> StoreResult<u64> {
        let tokens = tokens.to_vec();
        self.run(move |c| {
            let transaction = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut renewed = 0;
            for token in &tokens {
                renewed += transaction.execute(
                    "UPDATE jobs SET claim_until = ?2 WHERE claim_owner = ?1",
                    params![token, until_ms],
                )? as u64;
            }
            transaction.commit()?;
            Ok(renewed)
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
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
            ];
            let allowed = match (owner, states) {
                (Some(owner), _) => {
                    values.push(Value::Text(owner));
                    "claim_owner = ?14".to_owned()
                }
                (None, Some(states)) => {
                    values.push(Value::Integer(now_ms));
                    format!("state IN ({states}) AND (claim_owner IS NULL OR claim_until <= ?14)")
                }
                (None, None) => {
                    values.push(Value::Null);
                    "?14 IS NULL AND job_id IS NULL AND state IN ('sending', 'may_exist')"
                        .to_owned()
                }
            };
            let written = transaction.execute(
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
                     updated_at = ?13 \
                     WHERE intent = ?1 AND {allowed} \
                     AND (?4 IS NULL OR job_id IS NULL OR job_id = ?4)"
                ),
                rusqlite::params_from_iter(values),
            )?;
            if written == 0 {
                return Ok(None);
            }
            let row = select_one(&transaction, "intent = ?1", [intent])?;
            transaction.commit()?;
            Ok(row)
        })
        .await
    }
}
