//! One `kling edit` validates its request once and probes each local file
//! once: the checked request carries what was learnt to the estimate, the
//! upload and the create.

mod support;

use support::{SandboxProcess, kling, root};

#[test]
fn an_edit_validates_once_and_probes_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let counts = dir.path().join("counts.txt");
    let video = root().join("samples/street.mp4");
    let png = root().join("crates/core/tests/fixtures/image.png");
    let jpg = root().join("crates/core/tests/fixtures/image.jpg");
    let output = kling()
        .current_dir(dir.path())
        .env("KLING_CORE_COUNTS", &counts)
        .args([
            "edit",
            "--prompt",
            "Snow on @Video1 like @Image1 and @Image2",
        ])
        .arg("--video")
        .arg(&video)
        .arg("--image")
        .arg(&png)
        .arg("--image")
        .arg(&jpg)
        .arg("--out")
        .arg(dir.path().join("out.mp4"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&counts).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| **l == "validate").count(),
        1,
        "validated once: {lines:?}"
    );
    for path in [&video, &png, &jpg] {
        let probe = format!("probe {}", path.display());
        assert_eq!(
            lines.iter().filter(|l| **l == probe).count(),
            1,
            "{} probed once: {lines:?}",
            path.display()
        );
    }
    assert_eq!(
        lines.len(),
        4,
        "nothing else validated or probed: {lines:?}"
    );
}

#[test]
fn a_batch_validates_each_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let counts = dir.path().join("counts.txt");
    let video = root().join("samples/street.mp4");
    let lines: Vec<String> = ["snow", "rain"]
        .iter()
        .map(|weather| {
            serde_json::json!({"task": "edit", "video": video, "prompt": format!("Make it {weather} on @Video1")})
                .to_string()
        })
        .collect();
    let lines = lines.join("\n");
    let file = dir.path().join("night.jsonl");
    std::fs::write(&file, lines).unwrap();
    // A batch needs a sandbox that outlives it; AI/ML API takes local
    // files inline, so nothing else is read.
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let output = kling()
        .current_dir(dir.path())
        .env("KLING_CORE_COUNTS", &counts)
        .env("AIMLAPI_KEY", "any")
        .args(["--provider", "aimlapi", "--base-url"])
        .arg(format!("{}/aimlapi", sandbox.base))
        .arg("batch")
        .arg(&file)
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&counts).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let probe = format!("probe {}", video.display());
    assert_eq!(
        lines.iter().filter(|l| **l == "validate").count(),
        2,
        "one validation a line: {lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == probe).count(),
        2,
        "one probe a line: {lines:?}"
    );
}
