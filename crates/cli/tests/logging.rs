//! The log on stderr: `-v` levels, `--log-format json` for machines,
//! `RUST_LOG` over `-v`, and stdout left to the result.

mod support;

fn edit(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    support::kling_with_journal(&dir.path().join("jobs.sqlite3"))
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .args(args)
        .args(["edit", "--prompt", "Make it snow on @Video1", "--video"])
        .arg(support::root().join("samples/street.mp4"))
        .args(["--out", "out.mp4"])
        .output()
        .unwrap()
}

#[test]
fn each_v_says_more_and_json_lines_are_for_machines() {
    let quiet = edit(&[], &[]);
    assert!(quiet.status.success());
    let quiet = String::from_utf8_lossy(&quiet.stderr);
    assert!(!quiet.contains("job created"), "{quiet}");
    let info = edit(&["-v"], &[]);
    let info = String::from_utf8_lossy(&info.stderr);
    assert!(info.contains("job created"), "{info}");
    assert!(info.contains("INFO"), "{info}");
    assert!(!info.contains("DEBUG"), "{info}");
    let json = edit(&["-vv", "--json", "--log-format", "json"], &[]);
    assert!(json.status.success());
    // stdout is the result document alone.
    let result: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(result.is_object());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let created = lines
        .iter()
        .find(|line| line["message"] == "job created")
        .unwrap_or_else(|| panic!("no job created in {lines:?}"));
    assert_eq!(created["level"], "INFO");
    assert!(created["span"]["job"].is_string(), "{created}");
    assert!(lines.iter().any(|line| line["level"] == "DEBUG"));
    // The HTTP stack's own events only at -vvv.
    assert!(!lines.iter().any(|line| {
        line["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("connecting"))
    }));
    // RUST_LOG wins over -v.
    let chosen = edit(&["-vv"], &[("RUST_LOG", "error")]);
    let chosen = String::from_utf8_lossy(&chosen.stderr);
    assert!(!chosen.contains("job created"), "{chosen}");
}
