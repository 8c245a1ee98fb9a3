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

fn sandbox_usage(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(assert_cmd::cargo::cargo_bin!("kling"))
        .arg("sandbox")
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

#[test]
fn job_seconds_out_of_range_is_a_usage_error() {
    for value in [
        "NaN", "nan", "inf", "-inf", "-1", "86401", "1e300", "soon", "",
    ] {
        let stderr = sandbox_usage(&["--listen", "127.0.0.1:0", "--job-seconds", value]);
        assert!(
            stderr.contains("--job-seconds takes a number of seconds from 0 to 86400"),
            "{value}: {stderr}"
        );
    }
}

#[test]
fn fault_numbers_out_of_range_are_usage_errors() {
    for (spec, reason) in [
        ("429:NaN", "probability \"NaN\" is not a number from 0 to 1"),
        ("429*0", "times \"0\" is not a whole number from 1"),
        ("slow=99999999999", "from 0 to 600000"),
    ] {
        let stderr = sandbox_usage(&["--listen", "127.0.0.1:0", "--fault", spec]);
        assert!(stderr.contains(reason), "{spec}: {stderr}");
    }
}

#[test]
fn a_non_loopback_address_needs_allow_remote() {
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let stderr = sandbox_usage(&["--listen", listen]);
        assert!(
            stderr.contains(&format!("--listen {listen} is not a loopback address"))
                && stderr.contains("--allow-remote"),
            "{listen}: {stderr}"
        );
    }
}

#[test]
fn allow_remote_serves_and_warns() {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("kling"))
        .args([
            "sandbox",
            "--listen",
            "0.0.0.0:0",
            "--allow-remote",
            "--job-seconds",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(first.starts_with("http://0.0.0.0:"), "{first}");
    assert!(
        stderr.contains("warning: --allow-remote: the sandbox listens on 0.0.0.0:"),
        "{stderr}"
    );
}

/// `--upload URL` (and its older spelling `--upload-url`) sends a local
/// input to the endpoint, and the provider gets its URL.
#[test]
fn upload_and_its_alias_send_local_inputs_to_the_endpoint() {
    let sandbox = support::SandboxProcess::start(&["--job-seconds", "0"]);
    // Another store than the provider's own, so that only the flag sends
    // files there.
    let store = support::SandboxProcess::start(&["--job-seconds", "0"]);
    let video = support::root().join("samples/street.mp4");
    for (i, flag) in ["--upload", "--upload-url"].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.mp4");
        let output = support::kling()
            .env("SHORTAPI_KEY", "k")
            .args(["--provider", "shortapi", "--base-url"])
            .arg(format!("{}/shortapi", sandbox.base))
            .arg(flag)
            .arg(format!("{}/uploads", store.base))
            .args(["edit", "--prompt", "Make it snow on @Video1", "--video"])
            .arg(&video)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            kling_core::probe::probe_file(&out).is_ok(),
            "{flag}: a result"
        );
        assert_eq!(store.stats()["uploads"], i + 1, "{flag}");
        assert_eq!(sandbox.stats()["uploads"], 0, "{flag}");
    }
}
