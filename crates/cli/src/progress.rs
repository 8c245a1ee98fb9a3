//! What a waiting command shows: a spinner and a byte bar on a terminal,
//! one line per change otherwise. Always on stderr, so that stdout holds
//! only the result (or, with `--json`, only the JSON document).

use std::io::IsTerminal as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle, WeakProgressBar};

/// The bars on the terminal now, for [`suspended`].
static LIVE: Mutex<Vec<WeakProgressBar>> = Mutex::new(Vec::new());

fn live_bars() -> std::sync::MutexGuard<'static, Vec<WeakProgressBar>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `write` (a log line to stderr) with the progress bar cleared from
/// the terminal, then draws the bar again below it: the two never share a
/// line.
pub(crate) fn suspended(write: impl FnOnce()) {
    let live = {
        let mut bars = live_bars();
        bars.retain(|bar| bar.upgrade().is_some_and(|bar| !bar.is_finished()));
        bars.last().and_then(WeakProgressBar::upgrade)
    };
    match live {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Progress of one job.
pub(crate) enum Progress {
    /// A terminal: an updating line with the state, the elapsed time and,
    /// while downloading, the bytes.
    Bar(ProgressBar),
    /// Not a terminal: a line each time the state changes.
    Lines {
        name: String,
        started: Instant,
        last: Mutex<String>,
    },
}

impl Progress {
    /// Progress for the job called `name`.
    pub(crate) fn new(name: &str) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            live_bars().push(bar.downgrade());
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                name: name.to_owned(),
                started: Instant::now(),
                last: Mutex::new(String::new()),
            }
        }
    }

    /// The job's state, as its provider reports it.
    pub(crate) fn state(&self, state: &str) {
        match self {
            Progress::Bar(bar) => bar.set_message(state.to_owned()),
            Progress::Lines {
                name,
                started,
                last,
            } => {
                let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
                if *last != state {
                    eprintln!("{name}: {state} ({}s)", started.elapsed().as_secs());
                    state.clone_into(&mut last);
                }
            }
        }
    }

    /// Bytes of the result on disk, and the total when known.
    pub(crate) fn bytes(&self, written: u64, total: Option<u64>) {
        if let Progress::Bar(bar) = self {
            if let Some(total) = total
                && bar.length() != Some(total)
            {
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} downloading {bar:30} {bytes}/{total_bytes} [{elapsed}]",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_length(total);
            }
            bar.set_position(written);
        }
    }

    /// The job is over: clear the line.
    pub(crate) fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
