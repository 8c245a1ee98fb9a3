//! The shared backend: one PostgreSQL database for any number of processes
//! on any number of machines. Every step is one statement; uniqueness is
//! held by the database's constraints; a claim is a row lock taken with
//! `FOR UPDATE SKIP LOCKED` and a lease written on the row.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::State;
use crate::record::Record;
use crate::store::{
    Change, Claim, Filter, Guard, INSERT_COLUMNS, Left, NewRecord, PastCharges, Queue, Store,
    StoreError, StoreResult, UNFINISHED, queued, values_clause,
};

/// The schema version this code writes, in `kling_ledger_version`.
/// Version 2 adds the index by which batch workers take the next line;
/// version 3 records when a provider called back (`callback_at`).
const VERSION: i32 = 3;

/// What takes a database from each older version to the next.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE INDEX IF NOT EXISTS jobs_batch_line ON jobs (batch, batch_line) \
         WHERE state NOT IN ('downloaded', 'failed', 'cancelled')",
    ),
    (
        2,
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS callback_at BIGINT",
    ),
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kling_ledger_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    intent                 BIGSERIAL PRIMARY KEY,
    identity               TEXT NOT NULL,
    attempt                INTEGER NOT NULL DEFAULT 1,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    provider               TEXT NOT NULL,
    base_url               TEXT NOT NULL DEFAULT '',
    model                  TEXT NOT NULL,
    task                   TEXT NOT NULL,
    request                TEXT NOT NULL,
    sent_request           TEXT,
    seconds                BIGINT,
    batch                  TEXT,
    batch_line             BIGINT,
    job_id                 TEXT,
    state                  TEXT NOT NULL,
    resend                 BOOLEAN NOT NULL DEFAULT FALSE,
    output                 TEXT,
    overwrite              BOOLEAN NOT NULL DEFAULT FALSE,
    output_dir             TEXT,
    host                   TEXT,
    estimate_micros        BIGINT,
    charged_usd_micros     BIGINT,
    charged_credits_micros BIGINT,
    detail                 TEXT,
    sending_at             BIGINT,
    claim_owner            TEXT,
    claim_until            BIGINT,
    callback_at            BIGINT,
    UNIQUE (identity, attempt)
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_job ON jobs (provider, base_url, job_id)
    WHERE job_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_batch_line ON jobs (batch, batch_line)
    WHERE state NOT IN ('downloaded', 'failed', 'cancelled');
";

/// Now, in milliseconds since the epoch, on the server's clock: leases are
/// written and compared on one clock, however far the workers' machines'
/// clocks are apart.
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

const COLUMNS: &str = "intent, identity, attempt, created_at, updated_at, provider, base_url, \
    model, task, request, sent_request, seconds, batch, batch_line, job_id, state, resend, \
    output, output_dir, host, estimate_micros, charged_usd_micros, charged_credits_micros, \
    detail, sending_at, claim_owner, claim_until, overwrite, callback_at";

fn record(row: &Row) -> Record {
    let micros = |i: usize| {
        row.get::<_, Option<i64>>(i)
            .and_then(|v| u64::try_from(v).ok())
    };
    let state: String = row.get(15);
    Record {
        intent: row.get(0),
        identity: row.get(1),
        attempt: u32::try_from(row.get::<_, i32>(2)).unwrap_or(1),
        created_at: row.get(3),
        updated_at: row.get(4),
        provider: row.get(5),
        base_url: row.get::<_, Option<String>>(6).filter(|b| !b.is_empty()),
        model: row.get(7),
        task: row.get(8),
        request: row.get(9),
        sent_request: row.get(10),
        seconds: row
            .get::<_, Option<i64>>(11)
            .and_then(|v| u32::try_from(v).ok()),
        batch: row.get(12),
        batch_line: row.get(13),
        job_id: row.get(14),
        // A state this version does not know came from a newer one: treat
        // the row as possibly paid for, never as something to send.
        state: state.parse().unwrap_or(State::MayExist),
        resend: row.get(16),
        output: row.get::<_, Option<String>>(17).map(PathBuf::from),
        output_dir: row.get::<_, Option<String>>(18).map(PathBuf::from),
        host: row.get(19),
        estimate: micros(20).map(kling::Usd::from_micros),
        charged_usd: micros(21).map(kling::Usd::from_micros),
        charged_credits_micros: micros(22),
        detail: row.get(23),
        sending_at: row.get(24),
        claim_owner: row.get(25),
        claim_until: row.get(26),
        overwrite: row.get(27),
        callback_at: row.get(28),
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A PostgreSQL ledger.
#[derive(Debug, Clone)]
pub(crate) struct Postgres {
    /// The URL without its password, for messages.
    location: String,
    pool: Pool,
    /// Statements run, for [`Store::statements`].
    statements: Arc<AtomicU64>,
}

impl Postgres {
    /// Connects to the database at `url` (`postgres://…`), creating or
    /// migrating the schema.
    pub(crate) async fn connect(url: &str) -> StoreResult<Postgres> {
        let location = crate::redacted_url(url);
        let fail = |message: String| StoreError {
            location: location.clone(),
            message,
            conflict: false,
        };
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| fail(format!("not a PostgreSQL URL: {e}")))?;
        // A server that never answers is an error, not a hang.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Postgres::with_pool(pool, location).await
    }

    /// Uses `pool`'s connections, creating or migrating the schema.
    pub(crate) async fn with_pool(pool: Pool, location: String) -> StoreResult<Postgres> {
        let store = Postgres {
            location,
            pool,
            statements: Arc::new(AtomicU64::new(0)),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Counts `n` statements sent.
    fn sent(&self, n: u64) {
        self.statements.fetch_add(n, Ordering::Relaxed);
    }

    fn error(&self, e: &dyn std::fmt::Display, conflict: bool) -> StoreError {
        StoreError {
            location: self.location.clone(),
            message: e.to_string(),
            conflict,
        }
    }

    fn db_error(&self, e: &tokio_postgres::Error) -> StoreError {
        let conflict = e
            .code()
            .is_some_and(|c| *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
        self.error(e, conflict)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| self.error(&e, false))
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| self.db_error(&e))?;
        // One migrator at a time, across machines.
        transaction
            .execute("SELECT pg_advisory_xact_lock(7164201)", &[])
            .await
            .map_err(|e| self.db_error(&e))?;
        transaction
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| self.db_error(&e))?;
        let version: Option<i32> = transaction
            .query_opt("SELECT version FROM kling_ledger_version", &[])
            .await
            .map_err(|e| self.db_error(&e))?
            .map(|row| row.get(0));
        match version {
            None => {
                transaction
                    .execute(
                        "INSERT INTO kling_ledger_version (version) VALUES ($1)",
                        &[&VERSION],
                    )
                    .await
                    .map_err(|e| self.db_error(&e))?;
            }
            Some(VERSION) => {}
            Some(older) if older < VERSION => {
                for (from, step) in MIGRATIONS {
                    if *from >= older {
                        transaction
                            .batch_execute(step)
                            .await
                            .map_err(|e| self.db_error(&e))?;
                    }
                }
                transaction
                    .execute("UPDATE kling_ledger_version SET version = $1", &[&VERSION])
                    .await
                    .map_err(|e| self.db_error(&e))?;
            }
            Some(newer) => {
                return Err(self.error(
                    &format!(
                        "its schema is version {newer}, newer than this kling knows \
                         ({VERSION}); upgrade kling"
                    ),
                    false,
                ));
            }
        }
        transaction.commit().await.map_err(|e| self.db_error(&e))
    }

    async fn select_one(
        &self,
        filter: &str,
        values: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Record>> {
        let client = self.client().await?;
        self.sent(1);
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM jobs WHERE {filter}"),
                values,
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        Ok(row.as_ref().map(record))
    }

    async fn select_many(
        &self,
        filter: &str,
        values: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Record>> {
        let client = self.client().await?;
        self.sent(1);
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM jobs WHERE {filter}"),
                values,
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        Ok(rows.iter().map(record).collect())
    }
}

/// The values of a new row, in [`INSERT_COLUMNS`]'s order.
fn new_values(new: &NewRecord, now: i64) -> Vec<Box<dyn ToSql + Sync + Send>> {
    vec![
        Box::new(new.identity.clone()),
        Box::new(i32::try_from(new.attempt).unwrap_or(i32::MAX)),
        Box::new(now),
        Box::new(now),
        Box::new(new.provider.clone()),
        Box::new(new.base_url.clone().unwrap_or_default()),
        Box::new(new.model.clone()),
        Box::new(new.task.clone()),
        Box::new(new.request.clone()),
        Box::new(new.seconds.map(i64::from)),
        Box::new(new.batch.clone()),
        Box::new(new.batch_line),
        Box::new(new.state.as_str().to_owned()),
        Box::new(new.output.clone()),
        Box::new(new.output_dir.clone()),
        Box::new(new.estimate_micros.map(to_i64)),
        Box::new(new.job_id.clone()),
        Box::new(new.overwrite),
    ]
}

#[async_trait]
impl Store for Postgres {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    async fn insert(&self, new: NewRecord, now: i64) -> StoreResult<(Record, bool)> {
        let client = self.client().await?;
        let values = new_values(&new, now);
        self.sent(1);
        let inserted = client
            .query_opt(
                &format!(
                    "INSERT INTO jobs ({INSERT_COLUMNS}) VALUES {} \
                     ON CONFLICT (identity, attempt) DO NOTHING RETURNING {COLUMNS}",
                    values_clause(1, |n| format!("${n}"))
                ),
                &values
                    .iter()
                    .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                    .collect::<Vec<_>>(),
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        drop(client);
        if let Some(row) = inserted {
            return Ok((record(&row), true));
        }
        let attempt = i32::try_from(new.attempt).unwrap_or(i32::MAX);
        let existing = self
            .select_one("identity = $1 AND attempt = $2", &[&new.identity, &attempt])
            .await?
            .ok_or_else(|| self.error(&"the row it conflicted with is gone", true))?;
        Ok((existing, false))
    }

    async fn insert_many(&self, new: &[NewRecord], now: i64) -> StoreResult<()> {
        if new.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let values: Vec<Box<dyn ToSql + Sync + Send>> =
            new.iter().flat_map(|n| new_values(n, now)).collect();
        self.sent(1);
        client
            .execute(
                &format!(
                    "INSERT INTO jobs ({INSERT_COLUMNS}) VALUES {} \
                     ON CONFLICT (identity, attempt) DO NOTHING",
                    values_clause(new.len(), |n| format!("${n}"))
                ),
                &values
                    .iter()
                    .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                    .collect::<Vec<_>>(),
            )
            .await
            .map(drop)
            .map_err(|e| self.db_error(&e))
    }

    async fn get(&self, intent: i64) -> StoreResult<Option<Record>> {
        self.select_one("intent = $1", &[&intent]).await
    }

    async fn latest(&self, identity: &str) -> StoreResult<Option<Record>> {
        self.select_one("identity = $1 ORDER BY attempt DESC LIMIT 1", &[&identity])
            .await
    }

    async fn get_many(&self, intents: &[i64]) -> StoreResult<Vec<Record>> {
        self.select_many("intent = ANY($1) ORDER BY intent", &[&intents])
            .await
    }

    async fn latest_many(&self, identities: &[String]) -> StoreResult<Vec<Record>> {
        // DISTINCT ON keeps the first row of each identity: its latest attempt.
        let client = self.client().await?;
        self.sent(1);
        let rows = client
            .query(
                &format!(
                    "SELECT DISTINCT ON (identity) {COLUMNS} FROM jobs \
                     WHERE identity = ANY($1) ORDER BY identity, attempt DESC"
                ),
                &[&identities],
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        Ok(rows.iter().map(record).collect())
    }

    async fn by_job(&self, provider: &str, job_id: &str) -> StoreResult<Option<Record>> {
        self.select_one(
            "provider = $1 AND job_id = $2 ORDER BY intent DESC LIMIT 1",
            &[&provider, &job_id],
        )
        .await
    }

    async fn list(&self, filter: &Filter) -> StoreResult<Vec<Record>> {
        let client = self.client().await?;
        self.sent(1);
        let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE TRUE");
        if filter.unfinished {
            sql.push_str(" AND ");
            sql.push_str(UNFINISHED);
        }
        sql.push_str(" AND ($1::TEXT IS NULL OR provider = $1)");
        sql.push_str(" AND ($2::BIGINT IS NULL OR created_at >= $2)");
        sql.push_str(" AND ($3::BIGINT IS NULL OR created_at < $3)");
        sql.push_str(" ORDER BY intent");
        let rows = client
            .query(&sql, &[&filter.provider, &filter.since, &filter.until])
            .await
            .map_err(|e| self.db_error(&e))?;
        Ok(rows.iter().map(record).collect())
    }

    async fn past_charges(&self, provider: &str, model: &str) -> StoreResult<PastCharges> {
        let client = self.client().await?;
        self.sent(1);
        let row = client
            .query_one(
                "SELECT COUNT(*)::BIGINT, COALESCE(SUM(charged_usd_micros), 0)::BIGINT, \
                 COALESCE(SUM(seconds), 0)::BIGINT \
                 FROM jobs WHERE provider = $1 AND model = $2 \
                 AND charged_usd_micros IS NOT NULL AND seconds > 0",
                &[&provider, &model],
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        let get = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(PastCharges {
            jobs: get(0),
            micros: get(1),
            seconds: get(2),
        })
    }

    async fn job_ids(&self, provider: &str) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        self.sent(1);
        let rows = client
            .query(
                "SELECT job_id FROM jobs WHERE provider = $1 AND job_id IS NOT NULL",
                &[&provider],
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn claim(
        &self,
        intent: i64,
        owner: &str,
        dead: Option<&str>,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Option<Claim>> {
        let client = self.client().await?;
        self.sent(1);
        let lease = until_ms - now_ms;
        let taken = client
            .query_opt(
                &format!(
                    "UPDATE jobs SET claim_owner = $2, claim_until = {NOW_MS} + $3 \
                     WHERE intent = $1 AND (claim_owner IS NULL OR claim_owner = $2 \
                     OR claim_owner = $4 OR claim_until <= {NOW_MS}) RETURNING {COLUMNS}"
                ),
                &[&intent, &owner, &lease, &dead],
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        drop(client);
        match taken {
            Some(row) => Ok(Some(Claim::Taken(record(&row)))),
            None => Ok(self.get(intent).await?.map(Claim::Held)),
        }
    }

    async fn claim_next(
        &self,
        queue: &Queue<'_>,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Option<Record>> {
        let client = self.client().await?;
        self.sent(1);
        let lease = until_ms - now_ms;
        // SKIP LOCKED: workers claiming at the same instant each take a
        // different row instead of queueing behind one.
        let row = client
            .query_opt(
                &format!(
                    "UPDATE jobs SET claim_owner = $2, claim_until = {NOW_MS} + $3 \
                     WHERE intent = (\
                     SELECT intent FROM jobs WHERE batch = $1 AND {UNFINISHED} AND {} \
                     AND (claim_owner IS NULL OR claim_until <= {NOW_MS}) \
                     AND NOT (intent = ANY($6)) \
                     ORDER BY batch_line, intent LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     RETURNING {COLUMNS}",
                    queued("$4", "$5")
                ),
                &[
                    &queue.batch,
                    &owner,
                    &lease,
                    &queue.provider,
                    &queue.base_url,
                    &queue.skip,
                ],
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        Ok(row.as_ref().map(record))
    }

    async fn left(&self, queue: &Queue<'_>, now_ms: i64) -> StoreResult<Left> {
        let client = self.client().await?;
        self.sent(1);
        // When the soonest lease lapses, on this process's clock.
        let row = client
            .query_one(
                &format!(
                    "SELECT COUNT(*)::BIGINT, \
                     MIN(claim_until - {NOW_MS} + $4) FILTER (WHERE claim_until > {NOW_MS}) \
                     FROM jobs WHERE batch = $1 AND {UNFINISHED} AND {} \
                     AND NOT (intent = ANY($5))",
                    queued("$2", "$3")
                ),
                &[
                    &queue.batch,
                    &queue.provider,
                    &queue.base_url,
                    &now_ms,
                    &queue.skip,
                ],
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        Ok(Left {
            rows: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            soonest_lapse: row.get(1),
        })
    }

    async fn renew(&self, tokens: &[String], until_ms: i64) -> StoreResult<u64> {
        let client = self.client().await?;
        self.sent(1);
        let lease = until_ms - crate::now_ms();
        client
            .execute(
                &format!("UPDATE jobs SET claim_until = {NOW_MS} + $2 WHERE claim_owner = ANY($1)"),
                &[&tokens, &lease],
            )
            .await
            .map_err(|e| self.db_error(&e))
    }

    async fn release(&self, intent: i64, owner: &str) -> StoreResult<()> {
        let client = self.client().await?;
        self.sent(1);
        client
            .execute(
                "UPDATE jobs SET claim_owner = NULL, claim_until = NULL \
                 WHERE intent = $1 AND claim_owner = $2",
                &[&intent, &owner],
            )
            .await
            .map(drop)
            .map_err(|e| self.db_error(&e))
    }

    async fn update(
        &self,
        intent: i64,
        guard: Guard<'_>,
        change: &Change,
        now_ms: i64,
    ) -> StoreResult<Option<Record>> {
        let client = self.client().await?;
        self.sent(1);
        let state = change.state.map(|s| s.as_str().to_owned());
        let usd = change.charged_usd_micros.map(to_i64);
        let credits = change.charged_credits_micros.map(to_i64);
        let updated_at = now_ms / 1000;
        // Our own constant, never input.
        let release = if change.release { "TRUE" } else { "FALSE" };
        let (allowed, guard_value): (String, Option<String>) = match guard {
            Guard::Owner(owner) => ("claim_owner = $15".to_owned(), Some(owner.to_owned())),
            Guard::Unclaimed(states) => (
                format!(
                    "state = ANY(ARRAY[{}]) AND (claim_owner IS NULL OR claim_until <= {NOW_MS}) \
                     AND $15::TEXT IS NULL",
                    states
                        .iter()
                        .map(|s| format!("'{}'", s.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            ),
            Guard::Orphan => (
                "$15::TEXT IS NULL AND job_id IS NULL AND state IN ('sending', 'may_exist')"
                    .to_owned(),
                None,
            ),
        };
        let row = client
            .query_opt(
                &format!(
                    "UPDATE jobs SET \
                     state = COALESCE($2, state), \
                     resend = COALESCE($3, resend), \
                     job_id = COALESCE($4, job_id), \
                     sent_request = COALESCE($5, sent_request), \
                     sending_at = COALESCE($6, sending_at), \
                     output = COALESCE($7, output), \
                     host = COALESCE($8, host), \
                     charged_usd_micros = COALESCE($9, charged_usd_micros), \
                     charged_credits_micros = COALESCE($10, charged_credits_micros), \
                     detail = COALESCE($11, detail), \
                     batch_line = COALESCE($12, batch_line), \
                     updated_at = $13, \
                     callback_at = COALESCE($14, callback_at), \
                     claim_owner = CASE WHEN {release} THEN NULL ELSE claim_owner END, \
                     claim_until = CASE WHEN {release} THEN NULL ELSE claim_until END \
                     WHERE intent = $1 AND {allowed} \
                     AND ($4::TEXT IS NULL OR job_id IS NULL OR job_id = $4) \
                     RETURNING {COLUMNS}"
                ),
                &[
                    &intent,
                    &state,
                    &change.resend,
                    &change.job_id,
                    &change.sent_request,
                    &change.sending_at,
                    &change.output,
                    &change.host,
                    &usd,
                    &credits,
                    &change.detail,
                    &change.batch_line,
                    &updated_at,
                    &change.callback_at,
                    &guard_value,
                ],
            )
            .await
            .map_err(|e| self.db_error(&e))?;
        Ok(row.as_ref().map(record))
    }
}
