//! A fleet: `kling batch` processes sharing one PostgreSQL ledger, as
//! workers on several machines would. One is killed mid-run (SIGKILL), one
//! starts late; every line is still created once and downloaded once.
//!
//! Runs against the server named by `KLING_TEST_POSTGRES`
//! (`postgres://USER@127.0.0.1:PORT/postgres`), in a fresh database; says
//! loudly that it did not run when none is named.

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use kling_ledger::tokio_postgres;
use serde_json::Value;
use support::{SandboxProcess, kling_with_journal};

const LINES: usize = 320;

/// A fresh database on the test server, or `None` when no server is named.
fn database(test: &str) -> Option<(String, tokio::runtime::Runtime, tokio_postgres::Client)> {
    let Ok(server) = std::env::var("KLING_TEST_POSTGRES") else {
        // Straight to the terminal: the harness hides a passing test's
        // output, and a check that did not run must not look passed.
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: {test}: set KLING_TEST_POSTGRES to a PostgreSQL server's URL \
             (postgres://USER@127.0.0.1:PORT/postgres) to run it"
        );
        return None;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = format!("kling_fleet_{:016x}", fastrand::u64(..));
    let client = |url: String| async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    };
    let admin = runtime.block_on(client(server.clone()));
    runtime
        .block_on(admin.batch_execute(&format!("CREATE DATABASE {name}")))
        .unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&name);
    let url = url.to_string();
    let client = runtime.block_on(client(url.clone()));
    Some((url, runtime, client))
}

/// A batch of `LINES` edits of remote videos.
fn write_lines(file: &Path) {
    let lines: Vec<String> = (0..LINES)
        .map(|i| {
            format!(
                "{{\"task\": \"edit\", \"video\": \"https://media.example/{}.mp4\", \"prompt\": \"take {i}\"}}",
                i % 7
            )
        })
        .collect();
    std::fs::write(file, lines.join("\n")).unwrap();
}

/// `kling batch` as one worker of the fleet.
fn worker(journal: &str, sandbox: &SandboxProcess, file: &Path, out: &Path) -> Child {
    kling_with_journal(Path::new(journal))
        .current_dir(file.parent().unwrap())
        .env("OXEN_API_KEY", "k")
        .args(["--provider", "oxen", "--base-url"])
        .arg(format!("{}/oxen", sandbox.base))
        .args(["--json", "batch"])
        .arg(file)
        .args(["--concurrency", "8", "--lease", "3", "--timeout", "120"])
        // The lines' URLs name no real host: the ledger is what is tested.
        .arg("--no-preflight")
        .arg("--out-dir")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_fleet_with_a_killed_worker_and_a_late_one_creates_and_downloads_each_line_once() {
    let Some((journal, runtime, db)) = database("the fleet test") else {
        return;
    };
    // Zero until the first worker has made the schema.
    let count = |sql: &str| -> i64 {
        runtime
            .block_on(db.query_one(sql, &[]))
            .map_or(0, |row| row.get(0))
    };
    // Oxen: a create whose answer a killed worker never recorded is found
    // again at the provider, so every line can end downloaded.
    let sandbox = SandboxProcess::start(&["--job-seconds", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("night.jsonl");
    write_lines(&file);
    // One output folder, as workers sharing a disk would have; each row
    // records the host that wrote its file.
    let out = dir.path().join("out");
    let started = Instant::now();
    let mut workers: Vec<Child> = (0..3)
        .map(|_| worker(&journal, &sandbox, &file, &out))
        .collect();
    // Killed while it holds lines: once the fleet is well under way.
    let victim = workers.remove(0);
    let pid = victim.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let downloaded = count("SELECT COUNT(*) FROM jobs WHERE state = 'downloaded'");
        let held = count(&format!(
            "SELECT COUNT(*) FROM jobs WHERE claim_owner LIKE '%/{pid}/%'"
        ));
        if downloaded >= 40 && held > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the fleet made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut victim = victim;
    victim.kill().unwrap();
    let _ = victim.wait();
    let orphaned = count(&format!(
        "SELECT COUNT(*) FROM jobs WHERE claim_owner LIKE '%/{pid}/%'"
    ));
    // The late worker joins now.
    workers.push(worker(&journal, &sandbox, &file, &out));
    let mut done = 0;
    // A line the killed worker had marked `sending` but whose create never
    // left may exist as far as anyone can tell: it is reported, and never
    // created again (a survivor then exits 4). Every other line ends
    // downloaded.
    for worker in workers {
        done += survivor_summary(worker);
    }
    let elapsed = started.elapsed();
    let downloaded =
        count("SELECT COUNT(*) FROM jobs WHERE state = 'downloaded' AND host IS NOT NULL");
    let cut_off = count(
        "SELECT COUNT(*) FROM jobs WHERE state = 'may_exist' \
         AND detail LIKE '%process sending it stopped%'",
    );
    eprintln!(
        "fleet: {LINES} lines in {:.1} s; the killed worker held {orphaned} lines; the \
         survivors worked {done}; {cut_off} cut off between `sending` and their create",
        elapsed.as_secs_f64()
    );
    assert!(orphaned > 0, "the killed worker held lines when it died");
    assert!(cut_off <= orphaned);
    assert_eq!(
        downloaded + cut_off,
        i64::try_from(LINES).unwrap(),
        "every row downloaded (its host recorded), or cut off by the kill"
    );
    assert_eq!(
        sandbox.stats()["oxen"]["creates"].as_u64(),
        Some(u64::try_from(downloaded).unwrap()),
        "each job paid for is downloaded, none created twice"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM jobs"),
        i64::try_from(LINES).unwrap()
    );
    let outputs: Vec<String> = runtime
        .block_on(db.query("SELECT output FROM jobs WHERE state = 'downloaded'", &[]))
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_each_output_once(&out, &outputs, usize::try_from(downloaded).unwrap());
    // `kling jobs` shows the whole ledger, whoever worked each row.
    let listed = kling_with_journal(Path::new(&journal))
        .args(["--json", "jobs"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let rows = listed["jobs"].as_array().unwrap();
    assert_eq!(rows.len(), LINES);
    let listed_downloaded = rows
        .iter()
        .filter(|row| row["state"] == "downloaded")
        .count();
    assert_eq!(listed_downloaded, usize::try_from(downloaded).unwrap());
}

/// Waits for a surviving worker and checks its summary: every line
/// accounted for (its own, and the others'); returns how many it did.
fn survivor_summary(worker: Child) -> u64 {
    let output = worker.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let may_exist = summary["may_exist"].as_array().unwrap().len() as u64;
    let expected = if may_exist == 0 { 0 } else { 4 };
    assert_eq!(output.status.code(), Some(expected), "{stderr}");
    assert_eq!(summary["failed"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["unfinished"], serde_json::json!([]), "{summary}");
    let own = summary["done"].as_u64().unwrap();
    let accounted = own
        + summary["done_elsewhere"].as_u64().unwrap()
        + summary["skipped"].as_u64().unwrap()
        + may_exist;
    assert_eq!(accounted, LINES as u64, "{summary}");
    own
}

/// Every output written once: one intact file a line in `out`, each the
/// one its row (`outputs`) names.
fn assert_each_output_once(out: &Path, outputs: &[String], expected: usize) {
    let files: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    assert_eq!(files.len(), expected);
    let named = outputs
        .iter()
        .filter(|path| files.iter().any(|f| f == Path::new(path)))
        .count();
    assert_eq!(named, expected);
    for file in &files {
        assert!(
            kling_core::probe::probe_file(file).is_ok(),
            "{}",
            file.display()
        );
    }
}
