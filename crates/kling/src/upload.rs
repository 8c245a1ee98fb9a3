//! Turning local files into URLs, for providers that fetch media by URL.

use async_trait::async_trait;
use kling_core::{Delivery, Error, Media};

#[cfg(feature = "s3")]
pub use crate::s3::S3Uploader;
/// The object store crate [`S3Uploader`] is built on, for its builder.
#[cfg(feature = "s3")]
pub use object_store;

/// Makes a local file or bytes reachable by URL; plug one into
/// [`Client::with_uploader`] and local inputs work on providers that only
/// fetch URLs.
///
/// [`Client::with_uploader`]: crate::Client::with_uploader
pub use kling_core::provider::Uploader;

/// Uploads to an endpoint that takes the raw bytes in a POST and answers
/// `{"url": …}`, as the sandbox's `/uploads` does.
///
/// ```
/// use kling::upload::PostUploader;
///
/// let uploader = PostUploader::new("http://127.0.0.1:8787/uploads");
/// ```
#[derive(Debug, Clone)]
pub struct PostUploader {
    endpoint: String,
    http: reqwest::Client,
}

impl PostUploader {
    /// An uploader posting to `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        PostUploader {
            endpoint: endpoint.into(),
            http: kling_http::client_builder().build().unwrap_or_default(),
        }
    }

    /// Posts with the caller's HTTP settings (a custom CA, a proxy).
    ///
    /// ```
    /// use kling::ClientSettings;
    /// use kling::upload::PostUploader;
    ///
    /// let uploader = PostUploader::new("http://127.0.0.1:8787/uploads")
    ///     .with_settings(&ClientSettings::default())?;
    /// # drop(uploader);
    /// # Ok::<(), kling::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the client cannot be built; it says that no job was created.
    pub fn with_settings(mut self, settings: &kling_http::ClientSettings) -> Result<Self, Error> {
        self.http = settings
            .client(reqwest::redirect::Policy::default())
            .map_err(|e| upload_error("anything", &self.endpoint, kling_http::describe(e)))?;
        Ok(self)
    }
}

/// An upload's error. An upload creates no job, so whatever happened (no
/// connection, an unreadable file, a refusal, an answer cut short) nothing
/// paid may exist: it is never [`Delivery::MaybeSent`], and the message says
/// so.
pub(crate) fn upload_error(what: &str, endpoint: &str, cause: String) -> Error {
    Error::Transport {
        provider: "uploader".to_owned(),
        delivery: Delivery::NotSent,
        attempt: Some(format!(
            "uploading {what} to {} failed; no job was created",
            kling_http::redacted(endpoint)
        )),
        source: cause.into(),
    }
}

#[async_trait]
impl Uploader for PostUploader {
    async fn upload(&self, media: &Media) -> Result<String, Error> {
        // A file is read as it is sent: memory stays at one chunk.
        let (what, body, len): (String, reqwest::Body, u64) = match media {
            Media::File(path) => {
                let unreadable = |e: std::io::Error| Error::Local {
                    job: None,
                    what: format!(
                        "cannot read {} to upload it (no job was created)",
                        path.display()
                    ),
                    error: Box::new(e),
                };
                let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
                let len = file.metadata().await.map_err(unreadable)?.len();
                (
                    path.display().to_string(),
                    kling_http::file_body(file, len),
                    len,
                )
            }
            Media::Bytes { data, .. } => (
                format!("{} bytes", data.len()),
                reqwest::Body::from(data.to_vec()),
                data.len() as u64,
            ),
            Media::Url(url) => return Ok(url.clone()),
            _ => {
                return Err(upload_error(
                    "the input",
                    &self.endpoint,
                    "this uploader takes files and bytes only".to_owned(),
                ));
            }
        };
        let failed = |cause: String| upload_error(&what, &self.endpoint, cause);
        let response = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                failed(if e.is_connect() {
                    format!("could not connect: {}", kling_http::describe(e))
                } else {
                    kling_http::describe(e)
                })
            })?;
        let status = response.status();
        let answer = kling_http::read_capped(response)
            .await
            .map_err(|why| failed(format!("its answer is unreadable: {why}")))?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&answer);
            let excerpt: String = body.chars().take(200).collect();
            return Err(failed(format!(
                "the endpoint refused it: HTTP {status}: {excerpt}"
            )));
        }
        let answer: serde_json::Value = serde_json::from_slice(&answer)
            .map_err(|e| failed(format!("its answer is not JSON: {e}")))?;
        answer["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| failed(format!("its answer has no url: {answer}")))
    }
}
