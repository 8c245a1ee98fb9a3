//! A ledger row, and what is known before one is written.

use std::path::{Path, PathBuf};

use kling::{Checked, JobHandle, Media, Request, RequestSpec, Usd};
use sha2::{Digest as _, Sha256};

use crate::State;

/// One recorded job, as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// The row's number: `intent #12`.
    pub intent: i64,
    /// What identifies the request (with [`Record::attempt`]): a hash of
    /// the provider, its address and the request or the caller's key.
    pub identity: String,
    /// 1, or more after a failed job was created again on purpose.
    pub attempt: u32,
    /// When the intent was recorded, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the row last changed, in seconds since the Unix epoch.
    pub updated_at: i64,
    /// The provider's name.
    pub provider: String,
    /// Where the provider was reached, when not at its own address.
    pub base_url: Option<String>,
    /// The provider's model name.
    pub model: String,
    /// The task: `edit`, `refer`, `animate`, `compose`.
    pub task: String,
    /// The request as recorded (local paths absolute), as JSON.
    pub request: String,
    /// The request as it was sent (uploaded inputs as their URLs), once
    /// it is about to leave.
    pub sent_request: Option<String>,
    /// The seconds the job bills, when known before it runs.
    pub seconds: Option<u32>,
    /// The batch file the row comes from, when it does.
    pub batch: Option<String>,
    /// The line of that file it was last seen on.
    pub batch_line: Option<i64>,
    /// The provider's job id.
    pub job_id: Option<String>,
    /// Where the row stands.
    pub state: State,
    /// For `not_sent`: whether it may be sent again (it was interrupted
    /// before leaving, rather than refused).
    pub resend: bool,
    /// Where the result goes.
    pub output: Option<PathBuf>,
    /// Where the result goes when its file is named after the job id.
    pub output_dir: Option<PathBuf>,
    /// The host that wrote the result.
    pub host: Option<String>,
    /// The estimate made before sending.
    pub estimate: Option<Usd>,
    /// What the provider reported it charged, in dollars.
    pub charged_usd: Option<Usd>,
    /// What the provider reported it charged, in its credits, in
    /// millionths of a credit.
    pub charged_credits_micros: Option<u64>,
    /// What explains the state: the last error, the provider's reason.
    pub detail: Option<String>,
    /// When the create was about to leave, in milliseconds since the Unix
    /// epoch.
    pub sending_at: Option<i64>,
    /// The process working the row, while its lease holds.
    pub claim_owner: Option<String>,
    /// Until when, in milliseconds since the Unix epoch.
    pub claim_until: Option<i64>,
    /// Whether the result may replace a file at its output that it did
    /// not write (`--overwrite`).
    pub overwrite: bool,
    /// When the provider last called back about the job (a push that
    /// made the wait ask its status), in milliseconds since the Unix
    /// epoch; `None` when it never did.
    pub callback_at: Option<i64>,
}

impl Record {
    /// The job, once its id is known.
    pub fn job(&self) -> Option<JobHandle> {
        let id = self.job_id.as_ref()?;
        Some(JobHandle::new(self.provider.clone(), id.clone()).with_model(self.model.clone()))
    }

    /// How the row is named on screen: its job, or its intent number.
    pub fn name(&self) -> String {
        self.job()
            .map_or_else(|| format!("intent #{}", self.intent), |job| job.to_string())
    }

    /// The request as recorded.
    ///
    /// # Errors
    ///
    /// When the stored text is not a request (a row written by a newer
    /// version).
    pub fn request(&self) -> Result<Request, kling::Error> {
        parse_request(&self.request)
    }

    /// The request as sent, when it was about to leave.
    ///
    /// # Errors
    ///
    /// As [`Record::request`].
    pub fn sent_request(&self) -> Result<Option<Request>, kling::Error> {
        self.sent_request.as_deref().map(parse_request).transpose()
    }

    /// What went up through the uploader, and where: each input that was
    /// local, by field (`video`, `images[0]`), with the URL it was sent
    /// as, without its query. Empty before sending and for rows whose
    /// inputs were all URLs or went inline.
    pub fn uploads(&self) -> Vec<(String, String)> {
        let (Ok(recorded), Ok(Some(sent))) = (self.request(), self.sent_request()) else {
            return Vec::new();
        };
        recorded
            .media()
            .into_iter()
            .zip(sent.media())
            .filter_map(|(before, after)| match (before.media, after.media) {
                (kling::Media::Url(_), _) => None,
                (_, kling::Media::Url(url)) => Some((before.field, url.clone())),
                _ => None,
            })
            .collect()
    }

    /// Whether `kling resume` and [`Ledger::resume`](crate::Ledger::resume)
    /// have anything to do with this row.
    pub fn is_unfinished(&self) -> bool {
        match self.state {
            State::NotSent => self.resend,
            state => !state.is_final(),
        }
    }
}

fn parse_request(text: &str) -> Result<Request, kling::Error> {
    let spec: RequestSpec = serde_json::from_str(text).map_err(|e| kling::Error::Protocol {
        provider: "ledger".to_owned(),
        message: format!("a recorded request is unreadable: {e}"),
        body: text.to_owned(),
    })?;
    Request::try_from(spec)
}

/// Where a job's result goes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// This file.
    File(PathBuf),
    /// A file in this folder named after the job id (`JOB-ID.mp4`).
    NamedByJob(PathBuf),
}

impl Output {
    /// The folder the result goes to.
    pub fn dir(&self) -> &Path {
        match self {
            Output::File(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
            Output::NamedByJob(dir) => dir,
        }
    }

    /// The row's `output` and `output_dir` columns: absolute paths.
    pub(crate) fn recorded(&self) -> (Option<String>, Option<String>) {
        let text = |path: &Path| Some(absolute(path).display().to_string());
        match self {
            Output::File(path) => (text(path), None),
            Output::NamedByJob(dir) => (None, text(dir)),
        }
    }
}

/// A job to run through the ledger: the request, where its result goes,
/// and what identifies it.
///
/// By default a job is identified by its provider, the provider's address,
/// the request and the output file: running the same intent again (after
/// a crash, in a new process) finds the same row and never pays twice. A
/// caller that means a new job each time gives a fresh
/// [`key`](Intent::key); a batch gives the line's content and occurrence.
///
/// The request comes checked ([`Client::validate`](kling::Client::validate)):
/// the ledger records nothing that broke a rule.
///
/// ```
/// use kling::{EditRequest, Media, Request};
/// use kling_ledger::Intent;
///
/// let client = kling::Client::new(kling::shortapi::ShortApi::new("key".into())?);
/// let request = Request::from(EditRequest::new(Media::url("https://example.com/a.mp4"), "Snow"));
/// let intent = Intent::new(client.validate(&request)?, "snowy.mp4").overwrite(true);
/// assert_eq!(intent.request(), &request);
/// # Ok::<(), kling::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Intent {
    pub(crate) checked: Checked,
    pub(crate) output: Output,
    pub(crate) key: Option<String>,
    pub(crate) overwrite: bool,
    pub(crate) max_cost: Option<Usd>,
    pub(crate) batch: Option<(String, i64)>,
}

impl Intent {
    /// `checked`, its result written to `output`.
    pub fn new(checked: Checked, output: impl Into<PathBuf>) -> Self {
        Intent {
            checked,
            output: Output::File(output.into()),
            key: None,
            overwrite: false,
            max_cost: None,
            batch: None,
        }
    }

    /// `checked`, its result written in `dir` as `JOB-ID.mp4`. Such an
    /// intent has no natural identity: give it a [`key`](Intent::key).
    pub fn named_by_job(checked: Checked, dir: impl Into<PathBuf>) -> Self {
        Intent {
            output: Output::NamedByJob(dir.into()),
            ..Intent::new(checked, PathBuf::new())
        }
    }

    /// Identifies the job by `key` instead of its request and output, as an
    /// idempotency key does: the same key finds the same row.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Replaces an existing output file (by default one is refused before
    /// anything is sent).
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Refuses to send when the estimate is above `max`, or unknown.
    pub fn max_cost(mut self, max: Usd) -> Self {
        self.max_cost = Some(max);
        self
    }

    /// Records the batch and line the intent comes from ([`Batch::record`]
    /// sets it; the identity is the key).
    ///
    /// [`Batch::record`]: crate::Batch::record
    pub fn batch(mut self, file: impl Into<String>, line: i64) -> Self {
        self.batch = Some((file.into(), line));
        self
    }

    /// The request.
    pub fn request(&self) -> &Request {
        self.checked.request()
    }

    /// Where the result goes.
    pub fn output(&self) -> &Output {
        &self.output
    }
}

/// The request as recorded: its canonical text.
pub(crate) fn recorded(request: &Request) -> String {
    canonical(request)
}

/// A request's canonical text: every field in a fixed order, defaults
/// spelled out, local paths made absolute, so that two spellings of one
/// request are one text and the same words naming other files are not.
///
/// ```
/// use kling::{EditRequest, Media, Mode, Request, RequestSpec};
///
/// let a: RequestSpec = serde_json::from_str(
///     r#"{"prompt": "Snow", "task": "edit", "video": "https://e.com/a.mp4"}"#,
/// ).unwrap();
/// let b = Request::from(
///     EditRequest::new(Media::url("https://e.com/a.mp4"), "Snow").mode(Mode::Pro),
/// );
/// assert_eq!(
///     kling_ledger::canonical(&Request::try_from(a).unwrap()),
///     kling_ledger::canonical(&b),
/// );
/// ```
pub fn canonical(request: &Request) -> String {
    let request = request.clone().map_media(|_, media| match media {
        Media::File(path) => Media::File(absolute(&path)),
        other => other,
    });
    serde_json::to_string(&RequestSpec::from(request)).unwrap_or_default()
}

/// The identity of a job: a SHA-256 over the provider, its address and
/// what names the request, so that equal requests on one provider are one
/// identity, and nothing else is.
pub(crate) fn identity(provider: &str, base_url: Option<&str>, name: &str) -> String {
    let mut hash = Sha256::new();
    for part in [
        "kling-ledger/1",
        provider,
        base_url.unwrap_or_default(),
        name,
    ] {
        hash.update(part.len().to_le_bytes());
        hash.update(part.as_bytes());
    }
    kling_core::lower_hex(&hash.finalize())
}

/// A path as recorded: absolute, so that it means the same from any
/// directory.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use kling::{EditRequest, Media};

    use super::*;

    #[test]
    fn identities_tell_providers_addresses_and_names_apart() {
        let a = identity("shortapi", None, "x");
        assert_eq!(a.len(), 64);
        assert_eq!(a, identity("shortapi", None, "x"));
        assert_ne!(a, identity("oxen", None, "x"));
        assert_ne!(a, identity("shortapi", Some("http://127.0.0.1:1"), "x"));
        assert_ne!(a, identity("shortapi", None, "y"));
        // Parts are length-prefixed: moving a boundary changes the hash.
        assert_ne!(identity("ab", None, "c"), identity("a", None, "bc"));
    }

    #[test]
    fn a_recorded_request_reads_back() {
        let request: Request = EditRequest::new(Media::file("in.mp4"), "Snow").into();
        let text = recorded(&request);
        let spec: RequestSpec = serde_json::from_str(&text).unwrap();
        let Some(Media::File(path)) = spec.video else {
            panic!("{text}")
        };
        assert!(path.is_absolute());
    }
}
