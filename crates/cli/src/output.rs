//! Where a command's result goes, decided once from `--json`.

use std::io::Write as _;

use kling::Usd;
use kling_ledger::Done;
use serde_json::{Value, json};

/// How results and failures are printed on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// Text for people.
    Text,
    /// JSON only: one document (an error too), or one object a line for
    /// the commands that say so.
    Json,
}

impl Output {
    /// The mode `--json` asks for.
    pub(crate) fn new(json: bool) -> Self {
        if json { Output::Json } else { Output::Text }
    }

    /// Whether stdout takes JSON only.
    pub(crate) fn is_json(self) -> bool {
        self == Output::Json
    }

    /// Prints `document` on stdout with `--json`, else `text` (when there
    /// is any). A closed stdout is not the command's failure.
    pub(crate) fn print(self, document: impl FnOnce() -> Value, text: impl FnOnce() -> String) {
        let mut out = std::io::stdout().lock();
        let _ = match self {
            Output::Json => writeln!(out, "{}", document()),
            Output::Text => writeln!(out, "{}", text()),
        };
    }

    /// Prints a job run to its result: where it was written (the path on
    /// stdout, or the JSON document), and its size on stderr. `self` is
    /// `None` where the caller reports the results itself (resume with
    /// `--json`).
    pub(crate) fn done(to: Option<Self>, done: &Done) {
        let out = &done.output;
        eprintln!(
            "wrote {} ({} bytes)",
            crate::text::escaped(&out.display().to_string()),
            done.size
        );
        let Some(to) = to else { return };
        let row = &done.record;
        to.print(
            || {
                json!({
                    "job": row.job().map(|j| j.to_string()),
                    "intent": row.intent,
                    "state": row.state,
                    "output": out,
                    "size_bytes": done.size,
                    "estimate_usd": row.estimate.map(Usd::as_f64),
                    "charged_usd": row.charged_usd.map(Usd::as_f64),
                })
            },
            || out.display().to_string(),
        );
    }
}
