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

/// `bytes` as a terminal shows them, line by line: a carriage return or
/// `ESC [ n G` moves to the line's start, `ESC [ K` erases the line, other
/// escape sequences (colours, the cursor shown or hidden) draw nothing.
fn rendered(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = Vec::new();
    let mut line: Vec<char> = Vec::new();
    let mut column = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                lines.push(line.iter().collect::<String>());
                line.clear();
                column = 0;
            }
            '\r' => column = 0,
            '\u{1b}' => {
                if chars.peek() != Some(&'[') {
                    continue;
                }
                chars.next();
                let mut last = ' ';
                for next in chars.by_ref() {
                    if next.is_ascii_alphabetic() || next == '~' {
                        last = next;
                        break;
                    }
                }
                match last {
                    'K' => {
                        line.clear();
                        column = 0;
                    }
                    'G' => column = 0,
                    _ => {}
                }
            }
            c => {
                if column < line.len() {
                    line[column] = c;
                } else {
                    line.push(c);
                }
                column += 1;
            }
        }
    }
    lines.push(line.iter().collect());
    lines
}

/// On a terminal, log lines and the progress line never share a line:
/// each log line is written with the bar cleared, which is drawn again
/// below it. Run under `script`, which gives `kling` a pseudo-terminal.
#[test]
fn log_lines_and_the_progress_bar_do_not_garble_each_other_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let kling = assert_cmd::cargo::cargo_bin!("kling");
    let video = support::root().join("samples/street.mp4");
    let command = format!(
        "'{}' -vv edit --prompt 'Make it snow on @Video1' --video '{}' --out out.mp4",
        kling.display(),
        video.display()
    );
    let output = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("KLING_PROVIDER")
        .env_remove("KLING_CONFIG")
        .env("XDG_CONFIG_HOME", env!("CARGO_TARGET_TMPDIR"))
        .env("KLING_JOURNAL", dir.path().join("jobs.sqlite3"))
        .output()
        .expect("`script` (util-linux, essential on Debian) gives kling a terminal");
    let shown = rendered(&output.stdout);
    assert!(output.status.success(), "{shown:#?}");
    // The bar was drawn: its elapsed time shows in the raw bytes.
    let raw = String::from_utf8_lossy(&output.stdout);
    assert!(raw.contains("s]"), "no progress bar was drawn: {raw:?}");
    let logged: Vec<&String> = shown
        .iter()
        .filter(|line| line.contains(" INFO ") || line.contains(" DEBUG "))
        .collect();
    assert!(logged.len() >= 3, "{shown:#?}");
    for line in logged {
        // A log line starts with its timestamp, not after a bar's text.
        assert!(line.starts_with("20"), "garbled: {line:?} in {shown:#?}");
    }
}
