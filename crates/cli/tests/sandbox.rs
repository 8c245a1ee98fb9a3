//! `kling sandbox` as a process: it prints its URL and answers on it.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::get;

#[test]
fn serves_until_killed_and_counts_what_it_sees() {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("kling"))
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--job-seconds",
            "0",
            "--fault",
            "503*1@oxen/status",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first.trim().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let unauthorized = get(&base, "/aimlapi/v2/video/generations?generation_id=x");
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    let stats = get(&base, "/_sandbox/stats");
    assert!(stats.starts_with("HTTP/1.1 200"), "{stats}");
    assert!(stats.contains("\"oxen\":{"), "{stats}");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_bad_fault_is_a_usage_error() {
    let output = Command::new(assert_cmd::cargo::cargo_bin!("kling"))
        .args(["sandbox", "--fault", "418"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("unknown kind \"418\""), "{stderr}");
}
