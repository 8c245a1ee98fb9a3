//! Checking a media URL before a job that fetches it is paid for: its
//! headers read over HTTP `Range` requests by the header reader local files
//! go through ([`kling_core::probe::remote`]), within a deadline, a
//! number of ranges and a number of bytes, whatever the server does.

use std::time::Duration;

use kling_core::probe::remote::{RangeProbe, Step, WHOLE_BODY_CAP};
use kling_core::probe::{ProbeError, Probed};
use reqwest::{StatusCode, header};

/// How a URL is probed.
///
/// ```
/// use std::time::Duration;
/// use kling_http::probe::UrlProbeOptions;
///
/// let options = UrlProbeOptions::default().deadline(Duration::from_secs(5));
/// ```
#[derive(Clone, Debug)]
pub struct UrlProbeOptions {
    deadline: Duration,
    redirects: usize,
    settings: crate::ClientSettings,
}

impl Default for UrlProbeOptions {
    fn default() -> Self {
        UrlProbeOptions {
            deadline: Duration::from_secs(20),
            redirects: 5,
            settings: crate::ClientSettings::default(),
        }
    }
}

impl UrlProbeOptions {
    /// The longest the whole probe may take, every range included (20 s
    /// unless set): a server that answers slowly leaves its URL unchecked
    /// then, not the run waiting.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How many redirects are followed (5 unless set).
    #[must_use]
    pub fn redirects(mut self, redirects: usize) -> Self {
        self.redirects = redirects;
        self
    }

    /// Makes the prober's client from the caller's settings.
    #[must_use]
    pub fn settings(mut self, settings: crate::ClientSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The HTTP client a prober uses: the settings, with the redirect
    /// limit.
    ///
    /// # Errors
    ///
    /// When the client cannot be built (the TLS backend, a bad setting).
    pub fn client(&self) -> Result<reqwest::Client, reqwest::Error> {
        self.settings
            .client(reqwest::redirect::Policy::limited(self.redirects))
    }
}

/// What probing a URL found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UrlProbe {
    /// The media, as its headers describe it.
    pub probed: Probed,
    /// How many requests it took.
    pub requests: u32,
    /// How many bytes of the body were read.
    pub bytes: u64,
    /// Whether the server ignored `Range` (and only the start of the body
    /// was read).
    pub range_ignored: bool,
}

/// Why a URL did not probe. The URL in every message is [`redacted`](crate::redacted): a
/// signed URL's query is its credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlProbeError {
    /// The server answered with a status that says the provider cannot
    /// fetch it either (404, 403, 410, 401 and other 4xx but 408 and 429).
    #[error("{url} answered HTTP {status}; a provider fetching it would get the same")]
    Refused {
        /// The URL, redacted.
        url: String,
        /// The status.
        status: u16,
    },
    /// The server answered a web page, not media (an error or login page).
    #[error("{url} serves {content_type}, a web page, not a video or image")]
    NotMedia {
        /// The URL, redacted.
        url: String,
        /// The content type it announced.
        content_type: String,
    },
    /// The media itself is unusable: not a video or image, truncated,
    /// damaged, with an index larger than is read.
    #[error("{url}: {error}")]
    Media {
        /// The URL, redacted.
        url: String,
        /// What probing found.
        error: ProbeError,
    },
    /// No answer came: no connection, no name, no TLS. The provider may
    /// reach what this machine cannot.
    #[error("{url} could not be reached: {reason}")]
    Unreachable {
        /// The URL, redacted.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered but the media could not be checked: a 5xx, an
    /// answer too slow or too long, a wrong `Content-Range`, headers past
    /// what is read from a server that ignores `Range`.
    #[error("{url} could not be checked: {reason}")]
    Unchecked {
        /// The URL, redacted.
        url: String,
        /// Why.
        reason: String,
    },
}

impl UrlProbeError {
    /// Whether the answer shows the media unusable, so that a job fetching
    /// it would be paid for and fail: refuse it. Otherwise the URL merely
    /// went unchecked, and the provider may yet fetch it.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            UrlProbeError::Refused { .. }
                | UrlProbeError::NotMedia { .. }
                | UrlProbeError::Media { .. }
        )
    }
}

/// Probes the media at `url` over `http` (see [`UrlProbeOptions::client`]
/// for one that follows a bounded number of redirects).
///
/// An MP4 of any size with its `moov` at the end takes two ranges: the
/// first 64 KiB and the `moov`. A server that ignores `Range` is read up
/// to 4 MiB, and [`UrlProbe::range_ignored`] says so.
///
/// ```no_run
/// use kling_http::probe::{probe_url, UrlProbeOptions};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let options = UrlProbeOptions::default();
/// let found = probe_url(&options.client()?, "https://cdn.example/street.mp4", &options).await?;
/// println!("{:?} in {} requests", found.probed, found.requests);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`UrlProbeError`]: [`UrlProbeError::is_refusal`] tells an unusable
/// URL from one that could not be checked.
pub async fn probe_url(
    http: &reqwest::Client,
    url: &str,
    options: &UrlProbeOptions,
) -> Result<UrlProbe, UrlProbeError> {
    let shown = crate::redacted(url);
    match tokio::time::timeout(options.deadline, probe(http, url, &shown)).await {
        Ok(result) => result,
        Err(_) => Err(UrlProbeError::Unchecked {
            url: shown,
            reason: format!(
                "no complete answer within {} s",
                options.deadline.as_secs_f32()
            ),
        }),
    }
}

async fn probe(http: &reqwest::Client, url: &str, shown: &str) -> Result<UrlProbe, UrlProbeError> {
    let unchecked = |reason: String| UrlProbeError::Unchecked {
        url: shown.to_owned(),
        reason,
    };
    let mut probe = RangeProbe::new();
    let mut requests = 0;
    let mut range_ignored = false;
    let mut length = None;
    loop {
        let range = match probe.step() {
            Step::Fetch(range) => range,
            Step::Done(Ok(probed)) => {
                return Ok(UrlProbe {
                    probed,
                    requests,
                    bytes: probe.bytes(),
                    range_ignored,
                });
            }
            Step::Done(Err(error)) => {
                return Err(UrlProbeError::Media {
                    url: shown.to_owned(),
                    error,
                });
            }
            Step::Unchecked(reason) => return Err(unchecked(reason)),
            _ => return Err(unchecked("the probe stopped".to_owned())),
        };
        let first = requests == 0;
        requests += 1;
        let response = http
            .get(url)
            .header(
                header::RANGE,
                format!("bytes={}-{}", range.start, range.end - 1),
            )
            .header(header::ACCEPT_ENCODING, "identity")
            .send()
            .await
            .map_err(|e| sending_failed(e, shown))?;
        let status = response.status();
        if first {
            check_answer(&response, shown)?;
        }
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let (start, total) = content_range(&response, &range).map_err(&unchecked)?;
                // Ranges of two versions of a file would mix them.
                if *length.get_or_insert(total) != total {
                    return Err(unchecked(format!(
                        "its length changed between two requests ({} then {total} bytes)",
                        length.unwrap_or_default()
                    )));
                }
                let expected = range.end.min(total) - start;
                let body = read_at_most(response, expected)
                    .await
                    .map_err(|e| unchecked(format!("the answer was cut off: {e}")))?;
                if body.more || body.bytes.len() as u64 != expected {
                    return Err(unchecked(format!(
                        "it sent {} bytes where its Content-Range announced {expected}",
                        if body.more {
                            "more".to_owned()
                        } else {
                            body.bytes.len().to_string()
                        }
                    )));
                }
                probe.supply(start, body.bytes, total);
            }
            StatusCode::OK if first => {
                range_ignored = true;
                let total = response.content_length();
                let body = read_at_most(response, WHOLE_BODY_CAP)
                    .await
                    .map_err(|e| unchecked(format!("the answer was cut off: {e}")))?;
                probe.supply_start(body.bytes, total, !body.more);
            }
            StatusCode::OK => {
                return Err(unchecked(
                    "it stopped honouring Range requests between two requests".to_owned(),
                ));
            }
            // Nothing at byte 0: an empty file, when it says so.
            StatusCode::RANGE_NOT_SATISFIABLE
                if first && header_value(&response, header::CONTENT_RANGE) == Some("bytes */0") =>
            {
                probe.supply(0, Vec::new(), 0);
            }
            _ => {
                return Err(unchecked(format!(
                    "it answered HTTP {status} to a Range request"
                )));
            }
        }
    }
}

/// Refuses an answer that shows the URL unusable; passes one worth
/// reading.
fn check_answer(response: &reqwest::Response, shown: &str) -> Result<(), UrlProbeError> {
    let status = response.status();
    if status.is_client_error()
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
        && status != StatusCode::RANGE_NOT_SATISFIABLE
    {
        return Err(UrlProbeError::Refused {
            url: shown.to_owned(),
            status: status.as_u16(),
        });
    }
    if !status.is_success() && status != StatusCode::RANGE_NOT_SATISFIABLE {
        return Err(UrlProbeError::Unchecked {
            url: shown.to_owned(),
            reason: format!("it answered HTTP {status}"),
        });
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence == "text/html" || essence == "application/xhtml+xml" {
        return Err(UrlProbeError::NotMedia {
            url: shown.to_owned(),
            content_type: essence.to_owned(),
        });
    }
    Ok(())
}

fn header_value(response: &reqwest::Response, name: header::HeaderName) -> Option<&str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A request that got no answer: no connection, or redirects past the
/// limit. The URL is left out of reqwest's message; it is in `shown`.
fn sending_failed(error: reqwest::Error, shown: &str) -> UrlProbeError {
    let redirects = error.is_redirect();
    let reason = crate::describe(error);
    if redirects {
        return UrlProbeError::Unchecked {
            url: shown.to_owned(),
            reason: format!("too many redirects ({reason})"),
        };
    }
    UrlProbeError::Unreachable {
        url: shown.to_owned(),
        reason,
    }
}

/// The start and total of a `206`'s `Content-Range`, checked against
/// what was asked.
fn content_range(
    response: &reqwest::Response,
    asked: &std::ops::Range<u64>,
) -> Result<(u64, u64), String> {
    let raw = response
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or("its 206 answer has no readable Content-Range")?;
    let wrong = || format!("its Content-Range `{raw}` is not the range asked for");
    let (span, total) = raw
        .strip_prefix("bytes ")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(wrong)?;
    let (start, end) = span.split_once('-').ok_or_else(wrong)?;
    let parse = |n: &str| n.trim().parse::<u64>().map_err(|_| wrong());
    let (start, end) = (parse(start)?, parse(end)?);
    let total = if total.trim() == "*" {
        return Err(format!(
            "its Content-Range `{raw}` does not say how long the file is"
        ));
    } else {
        parse(total)?
    };
    // The start asked for, an end within what was asked and the file,
    // and nothing shorter than asked unless the file ends first.
    let ok = start == asked.start
        && end >= start
        && end < total
        && end < asked.end
        && (end + 1 == asked.end || end + 1 == total);
    if !ok {
        return Err(wrong());
    }
    Ok((start, total))
}

/// A body read up to a cap.
pub(crate) struct Capped {
    /// What was read: at most the cap.
    pub(crate) bytes: Vec<u8>,
    /// Whether the body goes on past the cap (it was not read further).
    pub(crate) more: bool,
}

/// Reads `response`'s body up to `max` bytes, and stops there: memory
/// stays at the cap however long the body is.
pub(crate) async fn read_at_most(
    mut response: reqwest::Response,
    max: u64,
) -> Result<Capped, reqwest::Error> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Capped { bytes, more: true });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Capped { bytes, more: false })
}
