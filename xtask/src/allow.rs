//! `schemas/allowed-differences.toml`: the differences between what we send
//! and what a provider publishes that were reviewed and kept on purpose,
//! each with its reason.

use std::path::Path;

use serde::Deserialize;

use crate::compare::Finding;

pub(crate) const FILE: &str = "schemas/allowed-differences.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    allow: Vec<Entry>,
}

/// One reviewed difference.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    provider: String,
    model: String,
    path: String,
    kind: String,
    reason: String,
}

impl Entry {
    fn matches(&self, finding: &Finding) -> bool {
        self.provider == finding.provider
            && self.model == finding.model
            && self.path == finding.path
            && self.kind == finding.kind.to_string()
    }
}

/// The reviewed entries in `root`'s allow-list.
///
/// # Errors
///
/// When the file cannot be read or parsed, or an entry has no reason.
pub(crate) fn load(root: &Path) -> Result<Vec<Entry>, String> {
    let path = root.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{FILE}: {e}")),
    };
    let file: File = toml::from_str(&text).map_err(|e| format!("{FILE}: {e}"))?;
    if let Some(entry) = file.allow.iter().find(|e| e.reason.trim().is_empty()) {
        return Err(format!(
            "{FILE}: the entry for {} {} {} ({}) gives no reason",
            entry.provider, entry.model, entry.path, entry.kind
        ));
    }
    Ok(file.allow)
}

/// Splits `findings` into those not allowed, and lines for allow-list
/// entries that match nothing (a fixed difference leaves its entry behind).
pub(crate) fn apply(
    entries: &[Entry],
    findings: Vec<Finding>,
) -> (Vec<Finding>, Vec<String>, usize) {
    let (allowed, left): (Vec<Finding>, Vec<Finding>) = findings
        .into_iter()
        .partition(|f| entries.iter().any(|e| e.matches(f)));
    let unused = entries
        .iter()
        .filter(|e| !allowed.iter().any(|f| e.matches(f)))
        .map(|e| {
            format!(
                "{FILE}: {} {} {} ({}) matches no difference any more: remove the entry",
                e.provider, e.model, e.path, e.kind
            )
        })
        .collect();
    (left, unused, allowed.len())
}
