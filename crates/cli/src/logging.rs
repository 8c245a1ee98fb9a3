//! The log: the library's `tracing` events on stderr, as text or JSON,
//! at the level `-v`/`-vv`/`-vvv` or `RUST_LOG` selects, written around
//! the progress bar so that neither garbles the other.

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per event, for machines.
    Json,
}

/// Installs the subscriber for the process. `RUST_LOG` wins over `-v`:
/// warnings alone by default, then this project's info and debug events
/// (its crates' targets all start with `kling`), then everything, the HTTP
/// stack's too.
pub(crate) fn install(verbosity: u8, format: LogFormat) {
    let level = match verbosity {
        0 => "warn",
        1 => "warn,kling=info",
        2 => "warn,kling=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(AroundProgress)
        .with_ansi(false)
        .with_target(false);
    // Another subscriber (none here) would make this fail: the log is then
    // that one's, which is as good.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Writes each log line to stderr with the progress bar, if any, out of
/// the way.
#[derive(Clone, Copy)]
struct AroundProgress;

impl<'a> MakeWriter<'a> for AroundProgress {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One event's text, written whole when dropped.
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        crate::progress::suspended(|| {
            let _ = io::stderr().lock().write_all(&line);
        });
    }
}
