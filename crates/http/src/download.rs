//! Streaming a result to disk: resumable, bounded in time, verified, by one
//! writer at a time, without the API key.
//!
//! A result is written only to `FILE.part`, and becomes `FILE` by one atomic
//! rename, after its length matched what the server announced, the probe
//! read it as a video, and it was synced to disk. Whoever holds the `.part`
//! file's lock is the only writer, from the first byte to the rename.

use std::future::Future;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use kling_core::probe::{self, Probed};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::retry::RetryPolicy;

/// Why a download did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The URL answered 403 or 404: a result URL that expired. Ask the job's
    /// status again for a fresh one.
    #[error(
        "the result URL answered HTTP {status}: it has expired; ask the job's status for a fresh one"
    )]
    Expired {
        /// The HTTP status.
        status: u16,
    },
    /// The server kept failing, or answered something unusable; a result
    /// shorter than the length the server announced ends here too, once
    /// retries are spent, and is never renamed into place.
    #[error("download failed: {message} ({kept} bytes kept for resuming)")]
    Failed {
        /// What went wrong last.
        message: String,
        /// Bytes kept in the `.part` file, ready to resume from.
        kept: u64,
    },
    /// The whole body arrived but is not a video (an HTML error page, an
    /// image, a damaged or truncated file). The `.part` file is removed: it
    /// is no prefix of the real result. Another URL for the same job (a
    /// fresh status) may serve the real one.
    #[error("the result is not a video: {detail}; nothing was kept")]
    NotAVideo {
        /// What was received instead, as the server labelled it and as the
        /// probe read it.
        detail: String,
    },
    /// No byte arrived for [`DownloadOptions::stall`]: the server holds the
    /// connection open and sends nothing. What arrived is kept; downloading
    /// again resumes from it.
    #[error(
        "the download stalled: no data for {}; {kept} bytes kept for resuming",
        seconds(*.after)
    )]
    Stalled {
        /// The stall limit that passed without data.
        after: Duration,
        /// Bytes kept in the `.part` file, ready to resume from.
        kept: u64,
    },
    /// The download's overall deadline ([`DownloadOptions::deadline`])
    /// passed. What arrived is kept; downloading again resumes from it.
    #[error(
        "the download did not finish within {}; {kept} bytes kept for resuming",
        seconds(*.after)
    )]
    TimedOut {
        /// The deadline.
        after: Duration,
        /// Bytes kept in the `.part` file, ready to resume from.
        kept: u64,
    },
    /// Another download (in this process or another) holds the `.part`
    /// file's lock: it is writing the same destination now.
    #[error(
        "another download is writing {} now; wait for it to finish (two writers would corrupt it)",
        path.display()
    )]
    Busy {
        /// The `.part` file.
        path: PathBuf,
    },
    /// The destination, or its `.part` file, exists and is not a regular
    /// file (a directory, a device, a FIFO, a symlink to one; for the
    /// `.part` file, any symlink). It is left as it was.
    #[error("{} is {found}, not a regular file; a result is written only to a regular file", path.display())]
    NotARegularFile {
        /// The path refused.
        path: PathBuf,
        /// What it is: "a directory", "a FIFO", "a symbolic link", …
        found: &'static str,
    },
    /// Writing the file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// How a download is bounded and retried.
///
/// ```
/// use std::time::Duration;
/// use kling_http::{DownloadOptions, RetryPolicy};
///
/// let options = DownloadOptions::default()
///     .stall(Duration::from_secs(20))
///     .deadline(Duration::from_secs(600))
///     .retry(RetryPolicy::NONE);
/// assert_eq!(options.stall, Duration::from_secs(20));
/// assert_eq!(DownloadOptions::default().stall, Duration::from_secs(60));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DownloadOptions {
    /// How long the server may send nothing (no answer, no byte of the
    /// body) before the download ends with [`DownloadError::Stalled`]. A
    /// stall is not retried: a host that hangs once mostly hangs again, and
    /// the caller decides when to resume. Default 60 s.
    pub stall: Duration,
    /// How long the whole download may take, retries and their waits
    /// included, before it ends with [`DownloadError::TimedOut`]. Default
    /// one hour (a 150 MB result at 42 KB/s).
    pub deadline: Duration,
    /// How dropped connections, 5xx answers and short bodies are retried.
    pub retry: RetryPolicy,
    /// How the HTTP client is made (redirects followed, up to 10).
    pub settings: crate::ClientSettings,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            stall: Duration::from_secs(60),
            deadline: Duration::from_secs(3600),
            retry: RetryPolicy::default(),
            settings: crate::ClientSettings::default(),
        }
    }
}

impl DownloadOptions {
    /// The defaults: 60 s stall limit, one hour deadline, the default
    /// retry policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the stall limit.
    #[must_use]
    pub fn stall(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }

    /// Sets the overall deadline.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Makes the client from the caller's settings.
    #[must_use]
    pub fn settings(mut self, settings: crate::ClientSettings) -> Self {
        self.settings = settings;
        self
    }
}

/// The `.part` file a download writes before renaming.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads `url` to `dest` with the default [`DownloadOptions`] but
/// `retry`. See [`download_with_options`].
///
/// # Errors
///
/// As [`download_with_options`].
pub async fn download(
    url: &str,
    dest: &Path,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
) -> Result<u64, DownloadError> {
    let options = DownloadOptions::default().retry(retry);
    download_with_options(url, dest, &options, clock, &|_, _| {}).await
}

/// What a download reports as it goes: the bytes on disk (resumed ones
/// included) and the total, when the server announced it.
pub type Progress<'a> = &'a (dyn Fn(u64, Option<u64>) + Send + Sync);

/// [`download`], calling `progress` after every chunk written.
///
/// # Errors
///
/// As [`download_with_options`].
pub async fn download_with_progress(
    url: &str,
    dest: &Path,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    progress: Progress<'_>,
) -> Result<u64, DownloadError> {
    let options = DownloadOptions::default().retry(retry);
    download_with_options(url, dest, &options, clock, progress).await
}

/// Downloads `url` to `dest` and returns the file's size.
///
/// - Streams into `dest.part`, resuming from what is already there with a
///   `Range` request (after a dropped connection, or a process killed
///   mid-way). No `Authorization` header is ever sent.
/// - Locks `dest.part` (an OS advisory lock) from before the first byte
///   until after the rename: two processes resuming the same job's result
///   would otherwise both append to it and corrupt it. The second one gets
///   [`DownloadError::Busy`] at once.
/// - Refuses a `dest` that exists and is not a regular file, and a
///   `dest.part` that is not one (a symlink included), before writing.
/// - Ends when no byte arrives for `options.stall`, and when
///   `options.deadline` passes; backoff waits go through `clock`.
/// - Accepts the result only when its length is what the server announced
///   and the probe reads it as a video; then syncs it and renames it into
///   place atomically.
///
/// # Errors
///
/// [`DownloadError::Expired`] on 403 or 404, at once, so the caller can ask
/// for a fresh URL; [`DownloadError::NotAVideo`] when the body is not a
/// video (the `.part` is removed); [`DownloadError::Stalled`] and
/// [`DownloadError::TimedOut`] (the `.part` kept); [`DownloadError::Busy`];
/// [`DownloadError::NotARegularFile`]; [`DownloadError::Failed`] when
/// retries are spent (a short body included).
pub async fn download_with_options(
    url: &str,
    dest: &Path,
    options: &DownloadOptions,
    clock: Arc<dyn Clock>,
    progress: Progress<'_>,
) -> Result<u64, DownloadError> {
    // Backoff waits and the time spent are counted on `clock`; waits on the
    // network are bounded in real time (tokio's timer), since a virtual
    // clock cannot race a socket.
    let started = clock.now();
    let limits = Limits {
        stall: options.stall,
        ends: Instant::now().checked_add(options.deadline),
    };
    let http = options
        .settings
        .client(reqwest::redirect::Policy::default())
        .map_err(|e| DownloadError::Failed {
            message: crate::describe(e),
            kept: 0,
        })?;
    let part = part_path(dest);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DownloadError::Io { path, source }
    };
    refuse_non_regular(dest, Follow::Yes)?;
    let locked = {
        let part = part.clone();
        tokio::task::spawn_blocking(move || open_locked(&part))
            .await
            .map_err(|e| DownloadError::Io {
                path: dest.to_owned(),
                source: std::io::Error::other(e),
            })??
    };
    let mut file = tokio::fs::File::from_std(locked);
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0;
    let error = loop {
        attempt += 1;
        let kept = file.metadata().await.map_err(io(&part))?.len();
        let outcome = fetch(&http, url, &mut file, kept, &limits, progress).await;
        // What was written is on disk before anything is reported.
        file.flush().await.map_err(io(&part))?;
        let kept = file.metadata().await.map_err(io(&part))?.len();
        let message = match outcome {
            Ok(Fetched::Complete {
                total,
                content_type,
            }) => {
                let file = file.into_std().await;
                let (to, into) = (part.clone(), dest.to_owned());
                return tokio::task::spawn_blocking(move || {
                    finish(file, &to, &into, total, content_type.as_deref())
                })
                .await
                .map_err(|e| DownloadError::Io {
                    path: part,
                    source: std::io::Error::other(e),
                })?;
            }
            Ok(Fetched::Expired(status)) => break DownloadError::Expired { status },
            Err(Attempt::Io(e)) => break io(&part)(e),
            Err(Attempt::Stalled) => {
                break DownloadError::Stalled {
                    after: options.stall,
                    kept,
                };
            }
            Err(Attempt::TimedOut) => {
                break DownloadError::TimedOut {
                    after: options.deadline,
                    kept,
                };
            }
            Err(Attempt::Retry(message)) => message,
        };
        if attempt >= options.retry.max_attempts {
            break DownloadError::Failed { message, kept };
        }
        let wait = options.retry.backoff(attempt, &mut rng);
        let spent = clock.now().saturating_sub(started);
        let past_real_deadline = limits
            .ends
            .is_some_and(|ends| Instant::now().checked_add(wait).is_none_or(|t| t >= ends));
        if spent.saturating_add(wait) >= options.deadline || past_real_deadline {
            break DownloadError::TimedOut {
                after: options.deadline,
                kept,
            };
        }
        clock.sleep(wait).await;
    };
    // An empty `.part` is no start worth keeping; it is removed while the
    // lock is still held, so no other download is using it.
    if file.metadata().await.is_ok_and(|m| m.len() == 0) {
        let _ = tokio::fs::remove_file(&part).await;
    }
    drop(file);
    Err(error)
}

/// The checks and the rename, on a blocking thread, still holding the
/// lock (`file` is the locked handle; it is closed, and the lock released,
/// only when this returns).
fn finish(
    file: std::fs::File,
    part: &Path,
    dest: &Path,
    total: u64,
    content_type: Option<&str>,
) -> Result<u64, DownloadError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DownloadError::Io { path, source }
    };
    let not_a_video = |detail: String| {
        // Not a prefix of the real result: resuming from it would only
        // append the video to an error page.
        match std::fs::remove_file(part) {
            Ok(()) => DownloadError::NotAVideo { detail },
            Err(source) => DownloadError::Io {
                path: part.to_owned(),
                source,
            },
        }
    };
    let served = content_type.map_or_else(String::new, |t| format!("the server sent {t}, "));
    match probe::probe_reader(&file) {
        Ok(Probed::Video(_)) => {}
        Ok(Probed::Image(image)) => {
            return Err(not_a_video(format!(
                "{served}{total} bytes: a {} image",
                image.format
            )));
        }
        Err(e) => return Err(not_a_video(format!("{served}{total} bytes: {e}"))),
    }
    file.sync_all().map_err(io(part))?;
    // Checked again just before the rename: it replaces whatever is there.
    refuse_non_regular(dest, Follow::Yes)?;
    std::fs::rename(part, dest).map_err(io(dest))?;
    sync_parent(dest);
    drop(file);
    Ok(total)
}

/// Makes the rename durable: syncs the directory that holds `path`, where
/// the platform allows opening one.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// A symlink to a regular file is fine (the rename replaces the link).
    Yes,
    /// Any symlink is refused.
    No,
}

/// Refuses `path` when it exists and is not a regular file.
fn refuse_non_regular(path: &Path, follow: Follow) -> Result<(), DownloadError> {
    let metadata = match follow {
        Follow::Yes => std::fs::metadata(path),
        Follow::No => std::fs::symlink_metadata(path),
    };
    match metadata {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) => Err(DownloadError::NotARegularFile {
            path: path.to_owned(),
            found: file_kind(m.file_type()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DownloadError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn file_kind(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens (creating it if needed) and locks the `.part` file.
///
/// The lock is what keeps two processes that resume the same job (two
/// `kling resume` runs, a batch and a resume) from both appending to one
/// `.part` file: each would send its own `Range` from the same offset and
/// the file would hold the overlap twice. The lock is advisory (`flock` on
/// Unix, `LockFileEx` on Windows), taken without waiting, and released when
/// the file is closed, after the rename.
fn open_locked(part: &Path) -> Result<std::fs::File, DownloadError> {
    let io = |source| DownloadError::Io {
        path: part.to_owned(),
        source,
    };
    // The path is checked again after the lock: its previous holder may
    // have renamed or removed the file we opened. Three tries are plenty; a
    // path that keeps changing is being worked by someone else.
    for _ in 0..3 {
        // No O_NOFOLLOW in std: a symlink (or a device, a FIFO) is refused
        // from its own metadata first, and the file opened is checked to be
        // the one the path names, after the lock.
        refuse_non_regular(part, Follow::No)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(part)
            .map_err(io)?;
        let opened = file.metadata().map_err(io)?;
        if !opened.is_file() {
            return Err(DownloadError::NotARegularFile {
                path: part.to_owned(),
                found: file_kind(opened.file_type()),
            });
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DownloadError::Busy {
                    path: part.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        match std::fs::symlink_metadata(part) {
            Ok(named) if same_file(&opened, &named) => return Ok(file),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    Err(DownloadError::Busy {
        path: part.to_owned(),
    })
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    b.is_file()
}

/// The time limits of one download: no data for `stall`, or past `ends`.
struct Limits {
    stall: Duration,
    ends: Option<Instant>,
}

impl Limits {
    /// Runs `future` until it completes, no data comes for the stall limit,
    /// or the deadline passes.
    async fn bound<F: Future>(&self, future: F) -> Result<F::Output, Attempt> {
        let stalls = Instant::now().checked_add(self.stall);
        let limit = match (stalls, self.ends) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(limit) = limit else {
            return Ok(future.await);
        };
        match tokio::time::timeout_at(limit, future).await {
            Ok(output) => Ok(output),
            Err(_) if self.ends.is_some_and(|ends| Instant::now() >= ends) => {
                Err(Attempt::TimedOut)
            }
            Err(_) => Err(Attempt::Stalled),
        }
    }
}

enum Fetched {
    Complete {
        total: u64,
        content_type: Option<String>,
    },
    Expired(u16),
}

enum Attempt {
    Retry(String),
    Io(std::io::Error),
    Stalled,
    TimedOut,
}

/// One try: asks for what is missing and writes it into `file`, the locked
/// `.part` file holding `kept` bytes.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    file: &mut tokio::fs::File,
    kept: u64,
    limits: &Limits,
    progress: Progress<'_>,
) -> Result<Fetched, Attempt> {
    let mut request = http.get(url);
    if kept > 0 {
        request = request.header(RANGE, format!("bytes={kept}-"));
    }
    let response = limits
        .bound(request.send())
        .await?
        .map_err(|e| Attempt::Retry(crate::describe(e)))?;
    let status = response.status();
    let (append, total) = match status {
        StatusCode::OK => (false, header_u64(&response, CONTENT_LENGTH)),
        StatusCode::PARTIAL_CONTENT => {
            let (start, total) = content_range(&response).ok_or_else(|| {
                Attempt::Retry("a 206 answer without a usable Content-Range".to_owned())
            })?;
            if start != kept {
                return Err(Attempt::Retry(format!(
                    "asked for byte {kept}, got a range from {start}"
                )));
            }
            // A range from 0 is the whole file: nothing to append to.
            (kept > 0, total)
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // Everything is already here when the total is what we hold.
            let total = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes */"))
                .and_then(|v| v.parse::<u64>().ok());
            if total == Some(kept) {
                return Ok(Fetched::Complete {
                    total: kept,
                    content_type: None,
                });
            }
            // The partial file is not a prefix of this result: start over,
            // in the same (locked) file.
            file.set_len(0).await.map_err(Attempt::Io)?;
            return Err(Attempt::Retry(
                "the partial file did not match; starting over".to_owned(),
            ));
        }
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::GONE => {
            return Ok(Fetched::Expired(status.as_u16()));
        }
        other => return Err(Attempt::Retry(format!("HTTP {other}"))),
    };
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut written = if append { kept } else { 0 };
    if !append {
        file.set_len(0).await.map_err(Attempt::Io)?;
    }
    file.seek(SeekFrom::Start(written))
        .await
        .map_err(Attempt::Io)?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = limits.bound(body.next()).await? {
        let chunk = chunk.map_err(|e| {
            Attempt::Retry(format!(
                "connection lost after {written} bytes: {}",
                crate::describe(e)
            ))
        })?;
        file.write_all(&chunk).await.map_err(Attempt::Io)?;
        written += chunk.len() as u64;
        progress(written, total);
    }
    match total {
        Some(total) if total != written => Err(Attempt::Retry(format!(
            "got {written} of the {total} bytes announced"
        ))),
        _ => Ok(Fetched::Complete {
            total: written,
            content_type,
        }),
    }
}

fn header_u64(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

/// `bytes START-END/TOTAL` as (START, TOTAL).
fn content_range(response: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.parse().ok()?;
    Some((start, total.parse().ok()))
}
