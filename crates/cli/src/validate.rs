//! `kling validate PATH|URL...`: the file rules, applied to local files and
//! to URLs, whose headers are read over HTTP `Range` requests.

use std::io::{self, Write};
use std::path::Path;

use kling::url_probe::{UrlProbeError, UrlProbeOptions};
use kling::{UrlChecker, UrlFact};
use kling_core::MediaKind;
use kling_core::probe::Probed;
use kling_core::rules::{FileReport, Violation, check_file, check_found};
use serde::Serialize;

use crate::Exit;

/// One line of `kling validate --json`: every field is present, `null`
/// when it does not apply or could not be read.
#[derive(Debug, Serialize)]
struct Line<'a> {
    path: &'a str,
    ok: bool,
    kind: Option<MediaKind>,
    duration_s: Option<f64>,
    width: Option<u32>,
    height: Option<u32>,
    rotation: Option<u16>,
    size_bytes: Option<u64>,
    errors: Vec<LineError>,
    /// What the content is, for people: `video`, `PNG image`.
    #[serde(skip)]
    found: Option<String>,
}

#[derive(Debug, Serialize)]
struct LineError {
    rule: &'static str,
    message: String,
}

impl<'a> Line<'a> {
    fn new(path: &'a str, report: &FileReport, size_on_disk: Option<u64>) -> Self {
        let mut line = Line {
            path,
            ok: report.is_ok(),
            kind: report.kind,
            duration_s: None,
            width: None,
            height: None,
            rotation: None,
            size_bytes: size_on_disk,
            errors: report
                .violations
                .iter()
                .map(|v| LineError {
                    rule: v.rule(),
                    message: v.message(),
                })
                .collect(),
            found: None,
        };
        match &report.probed {
            Some(Probed::Video(video)) => {
                line.found = Some("video".to_owned());
                line.duration_s = Some(millis_as_seconds(video.duration));
                if let Some(track) = video.video {
                    line.width = Some(track.width);
                    line.height = Some(track.height);
                    line.rotation = Some(track.rotation);
                }
                line.size_bytes = Some(video.size_bytes);
            }
            Some(Probed::Image(image)) => {
                line.found = Some(format!("{} image", image.format));
                line.width = Some(image.width);
                line.height = Some(image.height);
                line.size_bytes = Some(image.size_bytes);
            }
            None => {}
        }
        line
    }

    /// `video 1280x720, 4.200 s, 16541 bytes`: what was found, for people.
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        let found = self
            .found
            .clone()
            .or_else(|| self.kind.map(|k| k.to_string()));
        if let (Some(w), Some(h)) = (self.width, self.height) {
            let rotated = match self.rotation {
                Some(r) if r != 0 => format!(" (rotated {r}°)"),
                _ => String::new(),
            };
            let found = found.map(|f| f + " ").unwrap_or_default();
            parts.push(format!("{found}{w}x{h}{rotated}"));
        } else if let Some(found) = found {
            parts.push(found);
        }
        if let Some(d) = self.duration_s {
            parts.push(format!("{d:.3} s"));
        }
        if let Some(size) = self.size_bytes {
            parts.push(format!("{size} bytes"));
        }
        parts.join(", ")
    }
}

/// Seconds to the millisecond, as a number: 4.2, 2.96.
#[allow(clippy::cast_precision_loss)] // milliseconds of a video fit in f64 exactly
fn millis_as_seconds(d: std::time::Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

pub(crate) fn run(paths: &[impl AsRef<Path>], json: bool) -> Exit {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut all_ok = true;
    let mut checker = None;
    for path in paths {
        let path = path.as_ref();
        let raw = path.to_string_lossy();
        let (shown, report, size_on_disk) = if is_url(&raw) {
            let checker = match &mut checker {
                Some(checker) => checker,
                None => match UrlChecker::new(UrlProbeOptions::default()) {
                    Ok(made) => checker.insert(made),
                    Err(e) => {
                        eprintln!("kling: {e}");
                        return Exit::Transport;
                    }
                },
            };
            let (shown, report) = check_url(checker, &raw);
            (shown, report, None)
        } else {
            let size_on_disk = std::fs::metadata(path).ok().map(|m| m.len());
            (
                path.display().to_string(),
                check_file(path, None),
                size_on_disk,
            )
        };
        let line = Line::new(&shown, &report, size_on_disk);
        all_ok &= line.ok;
        // A closed stdout (`kling validate … | head`) is not an error of the files.
        let _ = if json {
            serde_json::to_writer(&mut out, &line)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            write_human(&mut out, &line)
        };
    }
    if all_ok {
        Exit::Success
    } else {
        Exit::Rejected
    }
}

/// Whether a `validate` argument is a URL rather than a path.
fn is_url(arg: &str) -> bool {
    let lower = arg.get(..8).unwrap_or(arg).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Reads `url`'s headers and checks them: the URL as shown (without its
/// query), and the report. A URL that could not be checked fails here
/// (`url_unchecked`): validating is asking for the check.
fn check_url(checker: &UrlChecker, url: &str) -> (String, FileReport) {
    let shown = kling::redacted(url);
    let expected = MediaKind::from_extension(Path::new(&shown));
    let probed = match crate::providers::block_on(async { Ok(checker.probe(url).await) }) {
        Ok(result) => result,
        Err(_) => Err(UrlProbeError::Unchecked {
            url: shown.clone(),
            reason: "cannot start the async runtime".to_owned(),
        }),
    };
    let unchecked = |reason: String| {
        FileReport::unread(
            expected,
            Violation::UrlUnchecked {
                field: shown.clone(),
                reason,
            },
        )
    };
    let report = match checker.clone().strict(true).fact(probed) {
        Ok(UrlFact::Probed(found)) => check_found(&shown, expected, Ok(found)),
        Ok(UrlFact::Unusable(reason)) => FileReport::unread(
            expected,
            Violation::UrlUnusable {
                field: shown.clone(),
                reason,
            },
        ),
        Ok(UrlFact::Unchecked(reason)) | Err(reason) => unchecked(reason),
        Ok(_) => unchecked("this build cannot read what was found".to_owned()),
    };
    (shown, report)
}

fn write_human(out: &mut impl Write, line: &Line<'_>) -> io::Result<()> {
    let summary = line.summary();
    let summary = if summary.is_empty() {
        String::new()
    } else {
        format!(" ({summary})")
    };
    if line.ok {
        writeln!(out, "ok      {}{summary}", line.path)
    } else {
        writeln!(out, "FAILED  {}{summary}", line.path)?;
        for error in &line.errors {
            writeln!(out, "        {}: {}", error.rule, error.message)?;
        }
        Ok(())
    }
}
