//! What the CLI's tests share: the binary with a clean environment, a
//! `kling sandbox` process, and its stats.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `kling`, with no provider, key or journal from the environment: its
/// journal is a fresh file in a folder under Cargo's temporary directory
/// for tests (inside `target/`, gone with `cargo clean`), and it runs in
/// that folder, so whatever it writes by default stays there.
pub fn kling() -> Command {
    let journal = tempfile::Builder::new()
        .prefix("kling-test-journal-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
        .join("journal.sqlite3");
    kling_with_journal(&journal)
}

/// `kling` with a clean environment and `journal`, run in the journal's
/// directory (a test's temporary one), never in the source tree.
pub fn kling_with_journal(journal: &Path) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("kling"));
    command
        .env_remove("KLING_PROVIDER")
        .env_remove("SHORTAPI_KEY")
        .env_remove("AIMLAPI_KEY")
        .env_remove("OXEN_API_KEY")
        // No configuration file but a test's own.
        .env_remove("KLING_CONFIG")
        .env("XDG_CONFIG_HOME", env!("CARGO_TARGET_TMPDIR"))
        .env("KLING_JOURNAL", journal);
    match journal.parent().filter(|dir| dir.is_dir()) {
        Some(dir) => command.current_dir(dir),
        None => command.current_dir(std::env::temp_dir()),
    };
    command
}

/// `kling --json ARGS` with `journal`, which must succeed: its document.
pub fn kling_json(journal: &Path, args: &[&str]) -> serde_json::Value {
    let output = kling_with_journal(journal)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The rows of `kling jobs --json` on `journal`, newest first.
pub fn jobs(journal: &Path) -> Vec<serde_json::Value> {
    kling_json(journal, &["jobs"])["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The JSON documents on `stdout`, one a line; panics on a line that is
/// not JSON.
pub fn documents(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// Polls every 50 ms, for at most 20 s, until `ready`.
pub fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..400 {
        if ready() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A GET on the sandbox, answered as raw HTTP.
pub fn get(base: &str, path: &str) -> String {
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// `kling sandbox` on a free port, killed when dropped.
pub struct SandboxProcess {
    child: Child,
    pub base: String,
}

impl SandboxProcess {
    pub fn start(args: &[&str]) -> Self {
        let mut child = kling()
            .args(["sandbox", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        SandboxProcess {
            child,
            base: line.trim().to_owned(),
        }
    }

    /// What the sandbox counted, as JSON.
    pub fn stats(&self) -> serde_json::Value {
        let answer = get(&self.base, "/_sandbox/stats");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
