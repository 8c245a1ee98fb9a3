//! `config.toml`: defaults for the flags a user repeats. Precedence: a
//! flag, then its environment variable, then the file, then the built-in
//! default.
//!
//! ```toml
//! provider = "shortapi"
//! upload = "s3://my-bucket/kling-inputs"
//! journal = "postgres://kling@db.internal/kling"
//! callback_listen = "0.0.0.0:8788"
//! callback_url = "https://hooks.example.com"
//!
//! [base_urls]
//! shortapi = "https://proxy.internal/shortapi"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::ValueEnum as _;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::error::Failure;
use crate::flags::Cli;
use crate::providers::ProviderName;

/// What the file may hold. Anything else is refused, naming the key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// The provider when neither `--provider` nor `KLING_PROVIDER` says.
    provider: Option<String>,
    /// Each provider's base URL, by provider name.
    #[serde(default)]
    base_urls: BTreeMap<String, String>,
    /// Where local files are uploaded (`--upload`).
    upload: Option<String>,
    /// The job ledger (`--journal`).
    journal: Option<PathBuf>,
    /// Where to listen for providers' calls back (`--callback-listen`).
    callback_listen: Option<std::net::SocketAddr>,
    /// The URL providers call (`--callback-url`).
    callback_url: Option<String>,
}

/// The file's place: `KLING_CONFIG`, else `$XDG_CONFIG_HOME/kling/config.toml`,
/// else `~/.config/kling/config.toml`.
pub(crate) fn location() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KLING_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("kling").join("config.toml"))
}

/// Fills in `cli` what neither a flag nor the environment set, from the
/// file when there is one.
///
/// # Errors
///
/// A usage error naming the file when it cannot be read or holds what is
/// not a setting.
pub(crate) fn apply(cli: &mut Cli, matches: &clap::ArgMatches) -> Result<(), Failure> {
    let Some(path) = location() else {
        return Ok(());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // No file is no settings; an explicit KLING_CONFIG must exist.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::env::var_os("KLING_CONFIG").is_none() =>
        {
            return Ok(());
        }
        Err(e) => {
            return Err(Failure::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "{} is not a kling configuration: {}",
            path.display(),
            e.message()
        ))
    })?;
    let given = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    if !given("provider")
        && let Some(name) = &file.provider
    {
        cli.provider = ProviderName::from_str(name, false).map_err(|_| {
            let known: Vec<&str> = ProviderName::value_variants()
                .iter()
                .map(|p| p.as_str())
                .collect();
            Failure::usage(format!(
                "{}: provider {name:?} is not one of {}",
                path.display(),
                known.join(", ")
            ))
        })?;
    }
    if cli.base_url.is_none() {
        cli.base_url = file.base_urls.get(cli.provider.as_str()).cloned();
    }
    if cli.upload_url.is_none() {
        cli.upload_url = file.upload;
    }
    if cli.journal.is_none() {
        cli.journal = file.journal;
    }
    if cli.callback_listen.is_none() {
        cli.callback_listen = file.callback_listen;
    }
    if cli.callback_url.is_none() {
        cli.callback_url = file.callback_url;
    }
    Ok(())
}
