//! `config.toml`: flags, then the environment, then the file, then the
//! built-in defaults.

mod support;

use support::SandboxProcess;

/// `kling --json … edit --dry-run` with `config` as the file: the call it
/// would send, or the failure.
fn dry_run(config: &str, extra_env: &[(&str, &str)], flags: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config).unwrap();
    support::kling()
        .env("KLING_CONFIG", &file)
        .env("SHORTAPI_KEY", "k")
        .envs(extra_env.iter().copied())
        .arg("--json")
        .args(flags)
        .args([
            "edit",
            "--prompt",
            "Snow on @Video1",
            "--dry-run",
            "--no-preflight",
            "--video",
        ])
        .arg("https://media.example/in.mp4")
        .output()
        .unwrap()
}

#[test]
fn the_file_sets_what_no_flag_or_variable_does() {
    let sandbox = SandboxProcess::start(&[]);
    let config = format!(
        "provider = \"shortapi\"\n[base_urls]\nshortapi = \"{}/shortapi\"\n",
        sandbox.base
    );
    // The file's provider and base URL.
    let output = dry_run(&config, &[], &[]);
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["provider"], "shortapi", "{shown}");
    assert!(
        shown["url"].as_str().unwrap().starts_with(&sandbox.base),
        "{shown}"
    );
    // The environment wins over the file: the in-process sandbox, not the
    // file's address.
    let url = |output: &std::process::Output| {
        let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        shown["url"].as_str().unwrap().to_owned()
    };
    let output = dry_run(&config, &[("KLING_PROVIDER", "sandbox")], &[]);
    assert!(!url(&output).starts_with(&sandbox.base));
    // A flag wins over both (AI/ML API would need its key: none is set).
    let output = dry_run(
        &config,
        &[("KLING_PROVIDER", "aimlapi")],
        &["--provider", "sandbox"],
    );
    assert!(output.status.success());
    assert!(!url(&output).starts_with(&sandbox.base));
}

#[test]
fn a_file_with_what_is_not_a_setting_is_a_usage_error_naming_it() {
    for (config, said) in [
        ("provider = \"shortapi\"\nproviders = 3\n", "providers"),
        ("provider = \"nobody\"\n", "nobody"),
        ("provider = [\n", "config.toml"),
    ] {
        let output = dry_run(config, &[], &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(2), "{config}: {stdout}");
        assert!(stdout.contains(said), "{config}: {stdout}");
    }
}
