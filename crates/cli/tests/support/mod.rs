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
/// journal is a fresh file under the system's temporary directory, and it
/// runs in that directory, so whatever it writes by default stays there.
pub fn kling() -> Command {
    let journal = tempfile::Builder::new()
        .prefix("kling-test-journal-")
        .tempdir()
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
        .env("KLING_JOURNAL", journal);
    match journal.parent().filter(|dir| dir.is_dir()) {
        Some(dir) => command.current_dir(dir),
        None => command.current_dir(std::env::temp_dir()),
    };
    command
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
