//! What every ledger backend must do, through the public API: one row per
//! identity however many handles record it, one claim holder at a time,
//! a dead holder's claim free once its lease lapses, transitions guarded,
//! an older journal migrated. Against the sandbox, so the claims and
//! writes are the pipeline's own.

use std::io::Write as _;
use std::time::Duration;

use kling::shortapi::ShortApi;
use kling::{Checked, Client, EditRequest, Media, Request, SecretString};
use kling_ledger::{Error, Filter, Intent, Ledger, Next, RunOptions, State};
use kling_sandbox::{Config, Sandbox};

async fn sandbox() -> (Sandbox, Client) {
    let sandbox = Sandbox::start(Config::default().job_duration(Duration::from_millis(200)))
        .await
        .unwrap();
    let adapter = ShortApi::with_base_url(
        &sandbox.url(kling_sandbox::Provider::ShortApi),
        SecretString::from("k"),
    )
    .unwrap();
    (sandbox, Client::new(adapter))
}

/// Where a test's ledger lives: a SQLite file, or a fresh database on
/// the PostgreSQL server named by `KLING_TEST_POSTGRES`.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh database on the test server, or `None`, said loudly, when
    /// `KLING_TEST_POSTGRES` is not set.
    async fn postgres(test: &str) -> Option<Backend> {
        let Ok(server) = std::env::var("KLING_TEST_POSTGRES") else {
            // Straight to the terminal: the test harness hides what a
            // passing test prints, and a check that did not run must not
            // look like one that passed.
            let _ = writeln!(
                std::io::stderr(),
                "NOT RUN: the PostgreSQL case of {test}: set KLING_TEST_POSTGRES to a server's \
                 URL (postgres://USER@127.0.0.1:PORT/postgres) to run it"
            );
            return None;
        };
        let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let name = format!("kling_test_{:016x}", fastrand::u64(..));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&name);
        Some(Backend::Postgres(url.to_string()))
    }

    /// Runs `sql` on the backend's database directly, as another program
    /// (or another version of kling) would; `?1`, `?2` are `values`.
    async fn execute(&self, sql: &str, values: &[i64]) {
        match self {
            Backend::Sqlite(dir) => {
                let connection =
                    rusqlite::Connection::open(dir.path().join("ledger.sqlite3")).unwrap();
                connection
                    .execute_batch("PRAGMA busy_timeout = 10000")
                    .unwrap();
                let mut statement = connection.prepare(sql).unwrap();
                statement
                    .execute(rusqlite::params_from_iter(values.iter()))
                    .unwrap();
            }
            Backend::Postgres(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                // The same placeholders in PostgreSQL's spelling.
                let mut sql = sql.to_owned();
                for n in (1..=values.len()).rev() {
                    sql = sql.replace(&format!("?{n}"), &format!("${n}"));
                }
                let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                    .iter()
                    .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                client.execute(&sql, &values).await.unwrap();
            }
        }
    }

    async fn open(&self) -> Ledger {
        match self {
            Backend::Sqlite(dir) => Ledger::open(dir.path().join("ledger.sqlite3")).unwrap(),
            Backend::Postgres(url) => Ledger::connect(url).await.unwrap(),
        }
    }
}

/// Each check, once on SQLite and once on PostgreSQL.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = super::Backend::postgres(stringify!($name)).await {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}

on_every_backend!(
    one_identity_is_one_row_across_handles,
    concurrent_runs_of_one_intent_create_once,
    a_claim_is_exclusive_until_its_holder_ends_or_its_lease_lapses,
    attach_and_forget_change_only_a_row_that_may_exist,
    clones_of_one_ledger_never_work_a_row_together,
    a_file_that_appears_at_the_output_is_never_replaced,
    a_claim_of_a_vanished_worker_is_taken_over_when_its_lease_lapses,
    workers_of_one_batch_create_each_line_once_in_few_statements,
    a_worker_writes_results_in_its_own_folder_and_records_it,
    a_row_is_worked_only_through_its_provider,
    a_line_let_go_without_a_result_is_not_taken_again_by_its_process,
);

/// An edit, checked for the sandbox's ShortAPI.
fn request(prompt: &str) -> Checked {
    let request: Request =
        EditRequest::new(Media::url("https://media.example/in.mp4"), prompt).into();
    kling::shortapi::DESCRIPTOR
        .capabilities
        .validate(&request)
        .unwrap()
}

async fn one_identity_is_one_row_across_handles(backend: Backend) {
    let (sandbox, client) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let mut handles: Vec<Ledger> = Vec::new();
    for _ in 0..4 {
        handles.push(backend.open().await);
    }
    let mut records = Vec::new();
    for ledger in &handles {
        let ledger = ledger.clone();
        let client = client.clone();
        let out = out.clone();
        records.push(tokio::spawn(async move {
            ledger
                .record(&client, &Intent::new(request("snow"), out))
                .await
                .unwrap()
        }));
    }
    let mut intents = Vec::new();
    for record in records {
        intents.push(record.await.unwrap().intent);
    }
    intents.dedup();
    assert_eq!(intents.len(), 1, "{intents:?}");
    // Another output, another key: other rows.
    let other = handles[0]
        .record(
            &client,
            &Intent::new(request("snow"), dir.path().join("b.mp4")),
        )
        .await
        .unwrap();
    let keyed = handles[0]
        .record(&client, &Intent::new(request("snow"), &out).key("k1"))
        .await
        .unwrap();
    assert_ne!(other.intent, intents[0]);
    assert_ne!(keyed.intent, intents[0]);
    assert_eq!(handles[1].jobs(&Filter::all()).await.unwrap().len(), 3);
    assert_eq!(
        sandbox.stats()["shortapi"].creates,
        0,
        "recording sends nothing"
    );
}

async fn concurrent_runs_of_one_intent_create_once(backend: Backend) {
    let (sandbox, client) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let mut runs = Vec::new();
    for _ in 0..3 {
        let ledger = backend.open().await;
        let (client, out) = (client.clone(), out.clone());
        runs.push(tokio::spawn(async move {
            ledger
                .run(
                    &client,
                    Intent::new(request("fog"), out),
                    &RunOptions::default(),
                )
                .await
        }));
    }
    for run in runs {
        let done = run.await.unwrap().unwrap();
        assert_eq!(done.record.state, State::Downloaded);
    }
    assert_eq!(sandbox.stats()["shortapi"].creates, 1);
    assert!(kling::probe::probe_file(&out).is_ok());
}

async fn a_claim_is_exclusive_until_its_holder_ends_or_its_lease_lapses(backend: Backend) {
    let (_sandbox, client) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = backend.open().await.with_lease(Duration::from_secs(1));
    let other = backend.open().await;
    let row = holder
        .record(
            &client,
            &Intent::new(request("rain"), dir.path().join("o.mp4")),
        )
        .await
        .unwrap();
    // The holder's run is slow enough to be caught mid-way.
    let run = {
        let (holder, client) = (holder.clone(), client.clone());
        tokio::spawn(async move {
            holder
                .work(&client, row.intent, &RunOptions::default())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = other
        .work(
            &client,
            row.intent,
            &RunOptions::default().wait_for_others(false),
        )
        .await;
    assert!(matches!(busy, Err(Error::Busy { .. })), "{busy:?}");
    // attach, forget need an unclaimed row in the right state.
    assert!(matches!(
        other.forget(row.intent).await,
        Err(Error::Conflict(_))
    ));
    run.await.unwrap().unwrap();
    // Done: the other handle gets it at once, done.
    let done = other
        .work(&client, row.intent, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(done.record.state, State::Downloaded);
    assert!(done.status.is_none(), "done earlier, not by this run");
}

async fn attach_and_forget_change_only_a_row_that_may_exist(backend: Backend) {
    let (_sandbox, client) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = backend.open().await;
    let row = ledger
        .record(
            &client,
            &Intent::new(request("hail"), dir.path().join("o.mp4")),
        )
        .await
        .unwrap();
    assert_eq!(row.state, State::Intent);
    let job = kling::JobHandle::new("shortapi", "j-1");
    // An intent that never left has no job to attach.
    assert!(matches!(
        ledger.attach(row.intent, &job).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        ledger.forget(row.intent).await,
        Err(Error::Conflict(_))
    ));
    let other = kling::JobHandle::new("oxen", "j-1");
    assert!(matches!(
        ledger.attach(row.intent, &other).await,
        Err(Error::Conflict(_))
    ));
}

#[test]
fn a_version_1_journal_is_migrated_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE jobs (
                    intent INTEGER PRIMARY KEY AUTOINCREMENT, created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL, provider TEXT NOT NULL, base_url TEXT,
                    model TEXT NOT NULL, task TEXT NOT NULL, fingerprint TEXT NOT NULL,
                    request TEXT NOT NULL, batch TEXT, batch_line INTEGER, job_id TEXT,
                    state TEXT NOT NULL, output TEXT, estimate_usd REAL, detail TEXT);
                 INSERT INTO jobs VALUES (1, 10, 10, 'shortapi', NULL, 'm', 'edit', 'f', '{}',
                    NULL, NULL, 'j1', 'running', '/tmp/a.mp4', 0.715, NULL);
                 INSERT INTO jobs VALUES (2, 11, 11, 'oxen', NULL, 'm', 'edit', 'f', '{}',
                    NULL, NULL, NULL, 'intent', NULL, NULL, NULL);",
            )
            .unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ledger = Ledger::open(&path).unwrap();
        let rows = ledger.jobs(&Filter::all()).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].state, State::Running);
        assert_eq!(rows[0].job_id.as_deref(), Some("j1"));
        assert_eq!(rows[0].estimate, Some(kling::Usd::from_micros(715_000)));
        // An old intent without an id may have left: never sent again.
        assert_eq!(rows[1].state, State::MayExist);
        // Opening again changes nothing.
        drop(ledger);
        let again = Ledger::open(&path).unwrap();
        assert_eq!(again.jobs(&Filter::all()).await.unwrap().len(), 2);
    });
}

/// A version 3 journal (before `callback_at`) gains the column and keeps
/// its rows.
#[test]
fn a_version_3_journal_gains_the_callback_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE jobs (
                    intent INTEGER PRIMARY KEY AUTOINCREMENT, identity TEXT NOT NULL,
                    attempt INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL, provider TEXT NOT NULL,
                    base_url TEXT NOT NULL DEFAULT '', model TEXT NOT NULL, task TEXT NOT NULL,
                    request TEXT NOT NULL, sent_request TEXT, seconds INTEGER, batch TEXT,
                    batch_line INTEGER, job_id TEXT, state TEXT NOT NULL,
                    resend INTEGER NOT NULL DEFAULT 0, output TEXT,
                    overwrite INTEGER NOT NULL DEFAULT 0, output_dir TEXT, host TEXT,
                    estimate_micros INTEGER, charged_usd_micros INTEGER,
                    charged_credits_micros INTEGER, detail TEXT, sending_at INTEGER,
                    claim_owner TEXT, claim_until INTEGER, UNIQUE (identity, attempt));
                 CREATE INDEX jobs_batch_line ON jobs (batch, batch_line);
                 INSERT INTO jobs (identity, created_at, updated_at, provider, model, task,
                    request, job_id, state)
                    VALUES ('i', 10, 10, 'shortapi', 'm', 'edit', '{}', 'j1', 'running');
                 PRAGMA user_version = 3;",
            )
            .unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ledger = Ledger::open(&path).unwrap();
        let rows = ledger.jobs(&Filter::all()).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].job_id.as_deref(), Some("j1"));
        assert_eq!(rows[0].callback_at, None);
    });
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
}

/// A database written by the first PostgreSQL ledger (schema version 1)
/// is migrated in place, its rows kept, by the first process to connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_migrated_and_keeps_its_rows() {
    let Some(backend) = Backend::postgres("a_version_1_database_is_migrated").await else {
        return;
    };
    backend
        .execute(
            "CREATE TABLE kling_ledger_version (version INTEGER NOT NULL)",
            &[],
        )
        .await;
    backend
        .execute("INSERT INTO kling_ledger_version VALUES (1)", &[])
        .await;
    backend
        .execute(
            "CREATE TABLE jobs (
                intent BIGSERIAL PRIMARY KEY, identity TEXT NOT NULL,
                attempt INTEGER NOT NULL DEFAULT 1, created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL, provider TEXT NOT NULL,
                base_url TEXT NOT NULL DEFAULT '', model TEXT NOT NULL, task TEXT NOT NULL,
                request TEXT NOT NULL, sent_request TEXT, seconds BIGINT, batch TEXT,
                batch_line BIGINT, job_id TEXT, state TEXT NOT NULL,
                resend BOOLEAN NOT NULL DEFAULT FALSE, output TEXT,
                overwrite BOOLEAN NOT NULL DEFAULT FALSE, output_dir TEXT, host TEXT,
                estimate_micros BIGINT, charged_usd_micros BIGINT,
                charged_credits_micros BIGINT, detail TEXT, sending_at BIGINT,
                claim_owner TEXT, claim_until BIGINT, UNIQUE (identity, attempt))",
            &[],
        )
        .await;
    backend
        .execute(
            "INSERT INTO jobs (identity, created_at, updated_at, provider, model, task, \
             request, job_id, state, batch, batch_line) \
             VALUES ('i', 10, 10, 'shortapi', 'm', 'edit', '{}', 'j1', 'running', 'b', 1)",
            &[],
        )
        .await;
    // Processes connecting together: one migrates, the others wait for it.
    let ledgers = futures_util::future::join_all((0..3).map(|_| backend.open())).await;
    let rows = ledgers[0].jobs(&Filter::all()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, State::Running);
    assert_eq!(rows[0].job_id.as_deref(), Some("j1"));
    // Version 2's index and version 3's column exist, and the version
    // says so.
    let Backend::Postgres(url) = &backend else {
        unreachable!()
    };
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let version: i32 = client
        .query_one("SELECT version FROM kling_ledger_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 3);
    // Version 3's column: when a provider called back.
    assert_eq!(rows[0].callback_at, None);
    let column: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_name = 'jobs' AND column_name = 'callback_at'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(column, 1);
    let index: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'jobs_batch_line'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(index, 1);
    // A database a newer kling wrote is refused, not written.
    client
        .execute("UPDATE kling_ledger_version SET version = 4", &[])
        .await
        .unwrap();
    let refused = Ledger::connect(url).await.unwrap_err().to_string();
    assert!(refused.contains("newer than this kling knows"), "{refused}");
}

async fn clones_of_one_ledger_never_work_a_row_together(backend: Backend) {
    let (sandbox, client) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = backend.open().await;
    let out = dir.path().join("out.mp4");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (ledger, client, out) = (ledger.clone(), client.clone(), out.clone());
            tokio::spawn(async move {
                ledger
                    .run(
                        &client,
                        Intent::new(request("sleet"), out).key("same"),
                        &RunOptions::default(),
                    )
                    .await
            })
        })
        .collect();
    for run in runs {
        assert_eq!(run.await.unwrap().unwrap().record.state, State::Downloaded);
    }
    assert_eq!(sandbox.stats()["shortapi"].creates, 1);
}

async fn a_file_that_appears_at_the_output_is_never_replaced(backend: Backend) {
    let (sandbox, client) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = backend.open().await;
    let out = dir.path().join("out.mp4");
    let row = ledger
        .record(&client, &Intent::new(request("dust"), &out))
        .await
        .unwrap();
    // Somebody writes the output before the intent is sent.
    std::fs::write(&out, b"mine").unwrap();
    let refused = ledger
        .work(&client, row.intent, &RunOptions::default())
        .await;
    assert!(matches!(refused, Err(Error::Output { .. })), "{refused:?}");
    let row = ledger.get(row.intent).await.unwrap().unwrap();
    assert_eq!((row.state, row.resend), (State::NotSent, true));
    assert_eq!(sandbox.stats()["shortapi"].creates, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");
    // Moved away: the same row is sent.
    std::fs::remove_file(&out).unwrap();
    let done = ledger
        .work(&client, row.intent, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(done.record.state, State::Downloaded);
    assert_eq!(sandbox.stats()["shortapi"].creates, 1);
}

/// A row recorded by a worker on one machine (its output in `a/`) is
/// finished by a worker whose results go to `b/`: the file is written
/// there, and the row says where and by which host.
async fn a_worker_writes_results_in_its_own_folder_and_records_it(backend: Backend) {
    let (sandbox, client) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let ledger = backend.open().await;
    let row = ledger
        .record(&client, &Intent::new(request("hail"), a.join("hail.mp4")))
        .await
        .unwrap();
    let other = backend.open().await;
    let done = other
        .work(&client, row.intent, &RunOptions::default().results_in(&b))
        .await
        .unwrap();
    assert_eq!(done.output, b.join("hail.mp4"));
    assert!(b.join("hail.mp4").is_file());
    assert!(!a.join("hail.mp4").exists());
    let row = ledger.get(row.intent).await.unwrap().unwrap();
    assert_eq!(row.output.as_deref(), Some(b.join("hail.mp4").as_path()));
    assert!(row.host.as_deref().is_some_and(|h| !h.is_empty()));
    assert_eq!(sandbox.stats()["shortapi"].creates, 1);
}

/// A row recorded for one provider is never sent through another, by a
/// single run or by a batch's worker.
async fn a_row_is_worked_only_through_its_provider(backend: Backend) {
    let (sandbox, shortapi) = sandbox().await;
    let oxen = Client::new(
        kling::oxen::Oxen::with_base_url(
            &sandbox.url(kling_sandbox::Provider::Oxen),
            SecretString::from("k"),
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let ledger = backend.open().await;
    let batch = ledger.batch("mixed.jsonl");
    let rows = batch
        .record(
            &shortapi,
            vec![(1, Intent::new(request("fog"), dir.path().join("fog.mp4")))],
        )
        .await
        .unwrap();
    let intent = rows[0].as_ref().unwrap().intent;
    let refused = ledger.work(&oxen, intent, &RunOptions::default()).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    // The same batch name on another provider has nothing to take.
    let elsewhere = ledger.batch("mixed.jsonl");
    let next = elsewhere.next(&oxen, &RunOptions::default()).await.unwrap();
    assert!(matches!(next, Next::Finished), "{next:?}");
    assert_eq!(sandbox.stats()["oxen"].creates, 0);
    assert_eq!(sandbox.stats()["shortapi"].creates, 0);
    // Its own provider takes it.
    let next = batch.next(&shortapi, &RunOptions::default()).await.unwrap();
    assert!(
        matches!(next, Next::Worked { result: Ok(_), .. }),
        "{next:?}"
    );
    assert_eq!(sandbox.stats()["shortapi"].creates, 1);
}

/// Milliseconds since the epoch, `ahead` from now.
fn epoch_ms(ahead: Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from((now + ahead).as_millis()).unwrap()
}

/// Marks row `intent` as claimed by a worker on another machine that went
/// silent: its lease lapses `after` from now.
async fn claimed_elsewhere(backend: &Backend, intent: i64, after: Duration) {
    backend
        .execute(
            "UPDATE jobs SET claim_owner = 'elsewhere/1/1/1/0#1', claim_until = ?1 \
             WHERE intent = ?2",
            &[epoch_ms(after), intent],
        )
        .await;
}

async fn a_claim_of_a_vanished_worker_is_taken_over_when_its_lease_lapses(backend: Backend) {
    let (sandbox, client) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = backend.open().await;
    let row = ledger
        .record(
            &client,
            &Intent::new(request("mist"), dir.path().join("o.mp4")),
        )
        .await
        .unwrap();
    claimed_elsewhere(&backend, row.intent, Duration::from_millis(1500)).await;
    let busy = ledger
        .work(
            &client,
            row.intent,
            &RunOptions::default().wait_for_others(false),
        )
        .await;
    assert!(matches!(busy, Err(Error::Busy { .. })), "{busy:?}");
    let started = std::time::Instant::now();
    let done = ledger
        .work(&client, row.intent, &RunOptions::default())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited for the lease"
    );
    assert_eq!(done.record.state, State::Downloaded);
    assert_eq!(sandbox.stats()["shortapi"].creates, 1);
}

/// Three workers (three handles, as three processes) share a batch of 12
/// lines, four at a time each; one line is held by a worker that vanished.
async fn workers_of_one_batch_create_each_line_once_in_few_statements(backend: Backend) {
    const LINES: i64 = 12;
    // Oxen's events end each wait as its job ends: the batch's time is its
    // jobs', not a poll's.
    let sandbox = Sandbox::start(Config::default().job_duration(Duration::from_millis(200)))
        .await
        .unwrap();
    let adapter = kling::oxen::Oxen::with_base_url(
        &sandbox.url(kling_sandbox::Provider::Oxen),
        SecretString::from("k"),
    )
    .unwrap();
    let client = Client::new(adapter);
    let request = |prompt: &str| {
        let request: Request =
            EditRequest::new(Media::url("https://media.example/in.mp4"), prompt).into();
        kling::oxen::DESCRIPTOR
            .capabilities
            .validate(&request)
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let lines = || {
        (1..=LINES)
            .map(|n| {
                let out = dir.path().join(format!("{n}.mp4"));
                (n, Intent::new(request(&format!("take {n}")), out))
            })
            .collect::<Vec<_>>()
    };
    // The first worker records the file; one line's claim then belongs to
    // a worker that went silent.
    let first = backend.open().await;
    let rows = first
        .batch("night.jsonl")
        .record(&client, lines())
        .await
        .unwrap();
    let held = rows[5].as_ref().unwrap().intent;
    claimed_elsewhere(&backend, held, Duration::from_millis(1500)).await;
    let mut workers = vec![first];
    for _ in 1..3 {
        workers.push(backend.open().await);
    }
    let mut tasks = Vec::new();
    for ledger in &workers {
        let batch = std::sync::Arc::new(ledger.batch("night.jsonl"));
        // Every worker records the whole file: it finds the rows.
        let found = batch.record(&client, lines()).await.unwrap();
        assert!(found.iter().all(Result::is_ok));
        for _ in 0..4 {
            let (batch, client) = (std::sync::Arc::clone(&batch), client.clone());
            tasks.push(tokio::spawn(async move {
                let mut worked = Vec::new();
                loop {
                    match batch.next(&client, &RunOptions::default()).await.unwrap() {
                        Next::Worked { record, result } => {
                            result.unwrap();
                            worked.push(record.intent);
                        }
                        Next::Wait(pause) => tokio::time::sleep(pause).await,
                        _ => return worked,
                    }
                }
            }));
        }
    }
    let mut worked = Vec::new();
    for task in tasks {
        worked.extend(task.await.unwrap());
    }
    worked.sort_unstable();
    let all: Vec<i64> = rows.iter().map(|r| r.as_ref().unwrap().intent).collect();
    assert_eq!(
        worked, all,
        "each line worked once, the vanished worker's too"
    );
    assert_eq!(sandbox.stats()["oxen"].creates, 12);
    let ended = workers[0].rows(&all).await.unwrap();
    assert!(ended.iter().all(|row| row.state == State::Downloaded));
    assert!(ended.iter().all(|row| row.host.is_some()));
    let statements: u64 = workers.iter().map(Ledger::statements).sum();
    let lines = u64::try_from(LINES).unwrap();
    // Tenths of a statement, in integers.
    let per_job = format!("{}.{}", statements / lines, statements * 10 / lines % 10);
    eprintln!("{statements} ledger statements for {LINES} jobs ({per_job} a job)");
    assert!(
        statements <= 10 * lines,
        "{statements} statements for {LINES} jobs ({per_job:.1} a job)"
    );
}

/// Every create of a batch is cut off after it was sent, at a provider
/// that cannot look a job up: each line ends `may_exist` at once and stays
/// takeable, for other processes. Eight tasks of one process race for the
/// lines; each line is worked, and sent, once.
async fn a_line_let_go_without_a_result_is_not_taken_again_by_its_process(backend: Backend) {
    const LINES: i64 = 24;
    let sandbox = Sandbox::start(
        Config::default().fault(
            kling_sandbox::Fault::new(kling_sandbox::FaultKind::Drop)
                .on(kling_sandbox::Operation::Create),
        ),
    )
    .await
    .unwrap();
    let adapter = kling::aimlapi::AimlApi::with_base_url(
        &sandbox.url(kling_sandbox::Provider::AimlApi),
        SecretString::from("k"),
    )
    .unwrap();
    let client = Client::new(adapter);
    let dir = tempfile::tempdir().unwrap();
    let lines = (1..=LINES)
        .map(|n| {
            let request: Request = EditRequest::new(
                Media::url("https://media.example/in.mp4"),
                format!("take {n}"),
            )
            .into();
            let checked = kling::aimlapi::DESCRIPTOR
                .capabilities
                .validate(&request)
                .unwrap();
            (n, Intent::new(checked, dir.path().join(format!("{n}.mp4"))))
        })
        .collect();
    let ledger = backend.open().await;
    let batch = std::sync::Arc::new(ledger.batch("cut.jsonl"));
    let rows = batch.record(&client, lines).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (batch, client) = (std::sync::Arc::clone(&batch), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut worked = Vec::new();
            loop {
                match batch.next(&client, &RunOptions::default()).await.unwrap() {
                    Next::Worked { record, result } => {
                        assert!(result.unwrap_err().may_exist());
                        worked.push(record.intent);
                    }
                    Next::Wait(pause) => tokio::time::sleep(pause).await,
                    _ => return worked,
                }
            }
        }));
    }
    let mut worked = Vec::new();
    for task in tasks {
        worked.extend(task.await.unwrap());
    }
    worked.sort_unstable();
    let once: Vec<i64> = rows.iter().map(|r| r.as_ref().unwrap().intent).collect();
    assert_eq!(worked, once, "each line worked once by its process");
    assert_eq!(sandbox.stats()["aimlapi"].creates, 24);
}
