//! `kling validate`: its output, line for line, and its exit codes.

use std::path::PathBuf;

use assert_cmd::Command;

fn fixture(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "core",
        "tests",
        "fixtures",
        name,
    ]
    .iter()
    .collect();
    path.to_str().unwrap().to_owned()
}

/// `kling`, run in the system's temporary directory: validation writes
/// nothing, and nothing may land in the source tree.
fn kling() -> Command {
    let mut command = Command::cargo_bin("kling").unwrap();
    command.current_dir(std::env::temp_dir());
    command
}

#[test]
fn passing_files_exit_zero_with_their_figures() {
    let output = kling()
        .args([
            "validate",
            &fixture("faststart.mp4"),
            &fixture("rotated.mp4"),
            &fixture("image.webp"),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "ok      {} (video 1280x720, 4.200 s, 16541 bytes)\n\
             ok      {} (video 720x1280 (rotated 90°), 4.000 s, 5773 bytes)\n\
             ok      {} (WebP image 640x480, 624 bytes)\n",
            fixture("faststart.mp4"),
            fixture("rotated.mp4"),
            fixture("image.webp")
        )
    );
}

#[test]
fn any_failing_file_exits_one_and_names_each_broken_rule() {
    let output = kling()
        .args([
            "validate",
            &fixture("clip.mov"),
            &fixture("webm_renamed.mp4"),
            &fixture("image_too_wide.png"),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "ok      {} (video 1920x1080, 3.520 s, 8960 bytes)\n\
             FAILED  {} (video, 16204 bytes)\n\
             \x20       video_container: a WebM/Matroska video; a video must be an MP4 or MOV file\n\
             FAILED  {} (PNG image 1260x500, 3048 bytes)\n\
             \x20       image_aspect: 1260x500 px is 2.52:1, the aspect ratio must be 0.4 to 2.5\n",
            fixture("clip.mov"),
            fixture("webm_renamed.mp4"),
            fixture("image_too_wide.png")
        )
    );
}

#[test]
fn json_is_one_object_per_input_per_line() {
    let output = kling()
        .args([
            "validate",
            "--json",
            &fixture("too_long.mp4"),
            &fixture("image.png"),
            "/no/such/file.mp4",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({
                "path": fixture("too_long.mp4"), "ok": false, "kind": "video",
                "duration_s": 10.04, "width": 1280, "height": 720, "rotation": 0, "size_bytes": 10919,
                "errors": [{"rule": "video_duration", "message": "10.040 s long, allowed 3 to 10 s"}]
            }),
            serde_json::json!({
                "path": fixture("image.png"), "ok": true, "kind": "image",
                "duration_s": null, "width": 640, "height": 480, "rotation": null, "size_bytes": 1970,
                "errors": []
            }),
            serde_json::json!({
                "path": "/no/such/file.mp4", "ok": false, "kind": "video",
                "duration_s": null, "width": null, "height": null, "rotation": null, "size_bytes": null,
                "errors": [{"rule": "file_unreadable", "message": "cannot read the file: No such file or directory (os error 2)"}]
            }),
        ]
    );
    // The flag may also come before the command.
    let output = kling()
        .args(["--json", "validate", &fixture("image.png")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .starts_with("{\"path\"")
    );
}

#[test]
fn usage_errors_exit_two() {
    for args in [
        &["validate"][..],
        &["validate", "--nope", "x"],
        &["frobnicate"],
        &[],
    ] {
        let output = kling().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}

/// Runs `kling ARGS` in `dir`, killing it when it has not ended within ten
/// seconds (a file that blocks its reader must not hang the tests). Returns
/// its exit code and what it printed, stdout then stderr.
#[cfg(unix)]
fn kling_bounded(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    use std::time::{Duration, Instant};

    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("kling"))
        .args(args)
        .current_dir(dir)
        .env_remove("KLING_PROVIDER")
        .env("KLING_JOURNAL", dir.join("journal.sqlite3"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read both streams aside, so that a full pipe cannot stall the child.
    let drain = |mut stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("kling {args:?} was still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let printed = stdout.join().unwrap() + &stderr.join().unwrap();
    (status.code(), printed)
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("input.mp4");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = fifo.to_str().unwrap();
    let folder = dir.path().join("folder.mp4");
    std::fs::create_dir(&folder).unwrap();
    let folder = folder.to_str().unwrap();

    let (code, stderr) = kling_bounded(dir.path(), &["validate", fifo]);
    assert_eq!(code, Some(1), "{stderr}");
    let expected = format!("{fifo} is a FIFO (named pipe); only regular files are accepted");
    assert!(stderr.contains(&expected), "{stderr}");

    let (code, stderr) = kling_bounded(dir.path(), &["validate", folder, "/dev/null"]);
    assert_eq!(code, Some(1), "{stderr}");
    for expected in [
        format!("{folder} is a directory; only regular files are accepted"),
        "/dev/null is a character device; only regular files are accepted".to_owned(),
    ] {
        assert!(stderr.contains(&expected), "{stderr}");
    }

    // A job's inputs are checked the same way, before anything is sent.
    for task in [
        &["edit", "--video", fifo][..],
        &["refer", "--video", fifo],
        &["animate", "--first", fifo],
        &["compose", "--image", fifo],
    ] {
        let mut args = task.to_vec();
        args.extend(["--prompt", "Make it snow", "--no-wait"]);
        let (code, stderr) = kling_bounded(dir.path(), &args);
        assert_eq!(code, Some(1), "{task:?}: {stderr}");
        assert!(stderr.contains(&expected), "{task:?}: {stderr}");
    }
}
