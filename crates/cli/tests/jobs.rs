//! The job commands on the sandbox, the README's first command, and the
//! exit codes of the CLI contract.

mod support;

use support::{SandboxProcess, kling, root};

/// The README's first command, split into its words.
fn readme_main_command() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo run "))
        .expect("the README starts with a `cargo run` command");
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    words.push(word);
    words
}

#[test]
fn the_readme_main_command_writes_a_real_mp4() {
    let words = readme_main_command();
    let args = &words[words.iter().position(|w| w == "--").unwrap() + 1..];
    let out = args[args.iter().position(|w| w == "--out").unwrap() + 1].clone();
    // Run where the README's reader would, but write the result in a
    // temporary directory: the input is named from the workspace root.
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let video_at = args.iter().position(|w| w == "--video").unwrap() + 1;
    let mut args = args.to_vec();
    args[video_at] = root().join(&args[video_at]).display().to_string();
    let output = kling().args(&args).current_dir(&cwd).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("provider: sandbox"), "{stderr}");
    let written = cwd.join(&out);
    let probed = kling_core::probe::probe_file(&written);
    let bytes = std::fs::read(&written).unwrap();
    assert!(matches!(
        probed.unwrap(),
        kling_core::probe::Probed::Video(_)
    ));
    // The sandbox echoes the uploaded input as the result.
    assert_eq!(bytes, std::fs::read(&args[video_at]).unwrap());
    // stdout names the result, as the ledger records it: absolute.
    assert_eq!(
        std::path::Path::new(String::from_utf8_lossy(&output.stdout).trim()),
        written
    );
}

#[test]
fn dry_run_json_prints_the_call_and_needs_no_key() {
    let output = kling()
        .args([
            "--provider",
            "shortapi",
            "--json",
            "refer",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "Fly over @Video1",
            "--duration",
            "10",
            "--mode",
            "std",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "provider": "shortapi",
            "method": "POST",
            "url": "https://api.shortapi.ai/api/v1/job/create",
            "body": {"model": "kwaivgi/kling-o1/video-to-video", "args": {
                "mode": "std", "action": "refer", "prompt": "Fly over [@Video1]",
                "video": "https://media.example/in.mp4", "keep_audio": false,
                "duration": "10", "aspect_ratio": "16:9"}},
            "estimate_usd": 1.1,
        })
    );
}

#[test]
fn max_cost_refuses_before_sending() {
    let sample = root().join("samples/street.mp4");
    let output = kling()
        .args([
            "edit",
            "--video",
            sample.to_str().unwrap(),
            "--prompt",
            "snow",
            "--max-cost",
            "0.5",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "the estimate $0.715 is above the budget $0.50 (--max-cost); nothing was sent"
        ),
        "{stderr}"
    );

    let output = kling()
        .args([
            "--provider",
            "shortapi",
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "snow",
            "--max-cost",
            "5",
        ])
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "a budget of $5.00 (--max-cost) is set but the cost is not known before sending"
        ),
        "{stderr}"
    );
}

#[test]
fn exit_codes_follow_the_contract() {
    let sample = root().join("samples/street.mp4");
    let sample = sample.to_str().unwrap();
    // 1: refused by local rules.
    let output = kling()
        .args([
            "animate",
            "--first",
            "https://media.example/a.png",
            "--prompt",
            "x",
            "--duration",
            "7",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("duration: 7 s, allowed 5 or 10 s"));
    // 2: usage, including a missing key.
    let output = kling()
        .args([
            "--provider",
            "shortapi",
            "edit",
            "--video",
            sample,
            "--prompt",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SHORTAPI_KEY is not set"));
    // 4: nothing listens at the base URL.
    let output = kling()
        .args([
            "--provider",
            "shortapi",
            "--base-url",
            "http://127.0.0.1:9",
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
        ])
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // 3: the job fails, on a running `kling sandbox` told to fail jobs.
    let mut sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "fail"]);
    let output = kling()
        .args([
            "--provider",
            "shortapi",
            "--base-url",
            &format!("{}/shortapi", sandbox.base),
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
        ])
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("failed: the sandbox was told to fail this job"),
        "{stderr}"
    );
    sandbox.stop();
}

#[test]
fn status_and_wait_follow_a_job_on_a_running_sandbox() {
    let mut sandbox = SandboxProcess::start(&["--job-seconds", "1"]);
    let base = format!("{}/shortapi", sandbox.base);
    let submit = kling()
        .args([
            "--provider",
            "shortapi",
            "--base-url",
            &base,
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
            "--no-wait",
        ])
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(submit.status.code(), Some(0));
    let job = String::from_utf8(submit.stdout).unwrap().trim().to_owned();
    assert!(job.starts_with("shortapi:"), "{job}");
    let status = kling()
        .args(["--base-url", &base, "--json", "status", &job])
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["job"], job.as_str());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let wait = kling()
        .args([
            "--base-url",
            &base,
            "wait",
            &job,
            "--out",
            out.to_str().unwrap(),
        ])
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(
        wait.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&wait.stderr)
    );
    assert!(out.exists());
    // Cancel is not something ShortAPI offers.
    let cancel = kling()
        .args(["--base-url", &base, "cancel", &job])
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(cancel.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&cancel.stderr).contains("shortapi does not offer cancelling jobs")
    );
    sandbox.stop();
}

#[test]
fn every_provider_takes_a_local_file_on_a_running_sandbox() {
    let mut sandbox = SandboxProcess::start(&["--job-seconds", "1"]);
    let input = root().join("samples/street.mp4");
    let dir = tempfile::tempdir().unwrap();
    for (provider, key) in [
        ("shortapi", "SHORTAPI_KEY"),
        ("aimlapi", "AIMLAPI_KEY"),
        ("oxen", "OXEN_API_KEY"),
    ] {
        let out = dir.path().join(format!("{provider}.mp4"));
        let run = kling()
            .args(["--provider", provider, "--base-url"])
            .arg(format!("{}/{provider}", sandbox.base))
            .args(["edit", "--video"])
            .arg(&input)
            .args(["--prompt", "Make @Video1 snowy", "--out"])
            .arg(&out)
            .env(key, "k")
            .output()
            .unwrap();
        assert_eq!(
            run.status.code(),
            Some(0),
            "{provider}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        // The sandbox echoes the input (uploaded, or inline for aimlapi).
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&input).unwrap(),
            "{provider}"
        );
    }
    // Oxen jobs can be cancelled.
    let base = format!("{}/oxen", sandbox.base);
    let submit = kling()
        .args(["--provider", "oxen", "--base-url", &base, "edit"])
        .args([
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
            "--no-wait",
        ])
        .env("OXEN_API_KEY", "k")
        .output()
        .unwrap();
    let job = String::from_utf8(submit.stdout).unwrap().trim().to_owned();
    assert!(job.starts_with("oxen:"), "{job}");
    let cancel = kling()
        .args(["--base-url", &base, "cancel", &job])
        .env("OXEN_API_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(
        cancel.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );
    sandbox.stop();
}
