//! Turning local files into URLs, for providers that fetch media by URL.

use std::fmt;

use async_trait::async_trait;
use kling_core::{Delivery, Error, Media};

/// Makes a local file or bytes reachable by URL: S3, GCS, an Oxen
/// repository, the sandbox. Plug one into [`Client::with_uploader`] and
/// local inputs work on providers that only fetch URLs.
///
/// [`Client::with_uploader`]: crate::Client::with_uploader
#[async_trait]
pub trait Uploader: Send + Sync + fmt::Debug {
    /// Uploads `media` (a file or bytes) and returns a URL the provider
    /// can fetch.
    async fn upload(&self, media: &Media) -> Result<String, Error>;
}

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
}

fn upload_error(delivery: Delivery, message: String) -> Error {
    Error::Transport {
        provider: "uploader".to_owned(),
        delivery,
        attempt: None,
        source: message.into(),
    }
}

#[async_trait]
impl Uploader for PostUploader {
    async fn upload(&self, media: &Media) -> Result<String, Error> {
        let bytes: Vec<u8> = match media {
            Media::File(path) => tokio::fs::read(path).await.map_err(|e| {
                upload_error(
                    Delivery::NotSent,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?,
            Media::Bytes { data, .. } => data.to_vec(),
            Media::Url(url) => return Ok(url.clone()),
            _ => {
                return Err(upload_error(
                    Delivery::NotSent,
                    "unsupported media".to_owned(),
                ));
            }
        };
        let response = self
            .http
            .post(&self.endpoint)
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                upload_error(
                    Delivery::MaybeSent,
                    format!("upload to {} failed: {e}", self.endpoint),
                )
            })?;
        let answer: serde_json::Value = response.json().await.map_err(|e| {
            upload_error(
                Delivery::MaybeSent,
                format!("upload answer unreadable: {e}"),
            )
        })?;
        answer["url"].as_str().map(str::to_owned).ok_or_else(|| {
            upload_error(
                Delivery::MaybeSent,
                format!("upload answer has no url: {answer}"),
            )
        })
    }
}
