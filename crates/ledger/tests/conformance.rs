//! What every ledger backend must do, through the public API: one row per
//! identity however many handles record it, one claim holder at a time,
//! a dead holder's claim free once its lease lapses, transitions guarded,
//! an older journal migrated. Against the sandbox, so the claims and
//! writes are the pipeline's own.

use std::time::Duration;

use kling::shortapi::ShortApi;
use kling::{Checked, Client, EditRequest, Media, Request, SecretString};
use kling_ledger::{Error, Filter, Intent, Ledger, RunOptions, State};
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
            eprintln!(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_of_a_vanished_worker_is_taken_over_when_its_lease_lapses() {
    let (sandbox, client) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let ledger = Ledger::open(&path).unwrap();
    let row = ledger
        .record(
            &client,
            &Intent::new(request("mist"), dir.path().join("o.mp4")),
        )
        .await
        .unwrap();
    // A worker on another machine claimed the row and went silent.
    let lapses = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE jobs SET claim_owner = 'elsewhere/1/1/1/0#1', claim_until = ?1 WHERE intent = ?2",
            rusqlite::params![i64::try_from(lapses).unwrap(), row.intent],
        )
        .unwrap();
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
