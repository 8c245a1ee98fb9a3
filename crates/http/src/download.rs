//! Streaming a result to disk, resumable, without the API key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use tokio::io::AsyncWriteExt as _;

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
    /// The server kept failing, or answered something unusable.
    #[error("download failed: {message} ({kept} bytes kept for resuming)")]
    Failed {
        /// What went wrong last.
        message: String,
        /// Bytes kept in the `.part` file, ready to resume from.
        kept: u64,
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

/// The `.part` file a download writes before renaming.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads `url` to `dest`: streams into `dest.part`, resumes from what is
/// already there with a `Range` request (after a dropped connection, or a
/// process killed mid-way), checks the length the server announced, then
/// renames into place. No `Authorization` header is ever sent.
///
/// Returns the file's size.
///
/// # Errors
///
/// [`DownloadError::Expired`] on 403 or 404, at once, so the caller can ask
/// for a fresh URL; [`DownloadError::Failed`] when retries are spent.
pub async fn download(
    url: &str,
    dest: &Path,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
) -> Result<u64, DownloadError> {
    download_with_progress(url, dest, retry, clock, &|_, _| {}).await
}

/// What a download reports as it goes: the bytes on disk (resumed ones
/// included) and the total, when the server announced it.
pub type Progress<'a> = &'a (dyn Fn(u64, Option<u64>) + Send + Sync);

/// [`download`], calling `progress` after every chunk written.
///
/// # Errors
///
/// As [`download`].
pub async fn download_with_progress(
    url: &str,
    dest: &Path,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    progress: Progress<'_>,
) -> Result<u64, DownloadError> {
    let http = crate::client_builder()
        .build()
        .map_err(|e| DownloadError::Failed {
            message: e.to_string(),
            kept: 0,
        })?;
    let part = part_path(dest);
    let io = |source| DownloadError::Io {
        path: part.clone(),
        source,
    };
    let mut rng = fastrand::Rng::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let kept = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
        let error = match fetch(&http, url, &part, kept, progress).await {
            Ok(Fetched::Complete(total)) => {
                let file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(&part)
                    .await
                    .map_err(io)?;
                file.sync_all().await.map_err(io)?;
                drop(file);
                tokio::fs::rename(&part, dest)
                    .await
                    .map_err(|source| DownloadError::Io {
                        path: dest.to_owned(),
                        source,
                    })?;
                return Ok(total);
            }
            Ok(Fetched::Expired(status)) => return Err(DownloadError::Expired { status }),
            Err(Attempt::Io(e)) => return Err(io(e)),
            Err(Attempt::Retry(message)) => message,
        };
        if attempt >= retry.max_attempts {
            let kept = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
            return Err(DownloadError::Failed {
                message: error,
                kept,
            });
        }
        clock.sleep(retry.backoff(attempt, &mut rng)).await;
    }
}

enum Fetched {
    Complete(u64),
    Expired(u16),
}

enum Attempt {
    Retry(String),
    Io(std::io::Error),
}

/// One try: asks for what is missing and appends it.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    part: &Path,
    kept: u64,
    progress: Progress<'_>,
) -> Result<Fetched, Attempt> {
    let mut request = http.get(url);
    if kept > 0 {
        request = request.header(RANGE, format!("bytes={kept}-"));
    }
    let response = request
        .send()
        .await
        .map_err(|e| Attempt::Retry(e.to_string()))?;
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
                return Ok(Fetched::Complete(kept));
            }
            // The partial file is not a prefix of this result: start over.
            tokio::fs::remove_file(part).await.map_err(Attempt::Io)?;
            return Err(Attempt::Retry(
                "the partial file did not match; starting over".to_owned(),
            ));
        }
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::GONE => {
            return Ok(Fetched::Expired(status.as_u16()));
        }
        other => return Err(Attempt::Retry(format!("HTTP {other}"))),
    };
    let mut file = if append {
        tokio::fs::OpenOptions::new().append(true).open(part).await
    } else {
        tokio::fs::File::create(part).await
    }
    .map_err(Attempt::Io)?;
    let mut written = if append { kept } else { 0 };
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                file.flush().await.map_err(Attempt::Io)?;
                return Err(Attempt::Retry(format!(
                    "connection lost after {written} bytes: {e}"
                )));
            }
        };
        file.write_all(&chunk).await.map_err(Attempt::Io)?;
        written += chunk.len() as u64;
        progress(written, total);
    }
    file.flush().await.map_err(Attempt::Io)?;
    match total {
        Some(total) if total != written => {
            Err(Attempt::Retry(format!("got {written} of {total} bytes")))
        }
        _ => Ok(Fetched::Complete(written)),
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
