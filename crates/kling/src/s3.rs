//! Local inputs put into an S3 bucket, handed to the provider as presigned
//! `GET` URLs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kling_core::{Delivery, Error, Media};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::signer::Signer as _;
use object_store::{ObjectStoreExt as _, PutPayload, RetryConfig, WriteMultipart};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use crate::upload::Uploader;

/// How long a presigned URL stays valid unless set: long enough for a job
/// queued for hours.
const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// Files up to this size go up in one `PUT`; larger ones in parts of this
/// size, a few at a time, each retried on its own.
const PART_BYTES: usize = 8 << 20;

/// Parts in flight at once: memory stays at this many parts.
const PARTS_AT_ONCE: usize = 2;

/// Uploads local inputs to `s3://BUCKET/PREFIX`, each under the SHA-256 of
/// its content (a file already there is not sent again), and gives the
/// provider a presigned `GET` URL valid for 24 hours unless
/// [set](S3Uploader::expiry).
///
/// Credentials, region and endpoint come from the standard environment:
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`, and `AWS_ENDPOINT_URL` for an S3-compatible store (R2,
/// `MinIO`). A plain-`http` endpoint is allowed on loopback only.
///
/// ```no_run
/// use std::sync::Arc;
/// use kling::upload::S3Uploader;
///
/// # fn run(client: kling::Client) -> Result<(), kling::Error> {
/// let uploader = S3Uploader::from_env("s3://my-bucket/kling-inputs")?;
/// let client = client.with_uploader(Arc::new(uploader));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct S3Uploader {
    store: Arc<AmazonS3>,
    target: String,
    prefix: String,
    expiry: Duration,
}

impl S3Uploader {
    /// An uploader to `target` (`s3://BUCKET` or `s3://BUCKET/PREFIX`),
    /// configured from the environment.
    ///
    /// # Errors
    ///
    /// As [`S3Uploader::with_builder`].
    pub fn from_env(target: &str) -> Result<S3Uploader, Error> {
        S3Uploader::with_builder(target, AmazonS3Builder::from_env())
    }

    /// An uploader to `target` (`s3://BUCKET` or `s3://BUCKET/PREFIX`),
    /// configured by `builder` (credentials, region, endpoint); the bucket
    /// comes from `target`.
    ///
    /// ```
    /// use kling::upload::S3Uploader;
    /// use kling::upload::object_store::aws::AmazonS3Builder;
    ///
    /// let builder = AmazonS3Builder::new()
    ///     .with_region("eu-west-1")
    ///     .with_access_key_id("AKIDEXAMPLE")
    ///     .with_secret_access_key("secret")
    ///     .with_endpoint("http://127.0.0.1:9000");
    /// assert!(S3Uploader::with_builder("s3://clips/inputs", builder.clone()).is_ok());
    /// // Plain http is for loopback only.
    /// let remote = builder.with_endpoint("http://storage.example");
    /// assert!(S3Uploader::with_builder("s3://clips/inputs", remote).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Local`] when `target` is not an `s3://` URL, the endpoint
    /// is plain `http` off loopback, or the configuration is incomplete.
    pub fn with_builder(target: &str, builder: AmazonS3Builder) -> Result<S3Uploader, Error> {
        let refused = |why: String| Error::Local {
            job: None,
            what: format!("cannot upload to {target}"),
            error: why.into(),
        };
        let rest = target
            .strip_prefix("s3://")
            .ok_or_else(|| refused("the upload target must be s3://BUCKET[/PREFIX]".to_owned()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(refused("s3://BUCKET[/PREFIX] names no bucket".to_owned()));
        }
        let endpoint = [AmazonS3ConfigKey::S3Endpoint, AmazonS3ConfigKey::Endpoint]
            .iter()
            .find_map(|key| builder.get_config_value(key));
        let plain_http = match &endpoint {
            Some(raw) => {
                let url = reqwest::Url::parse(raw)
                    .map_err(|e| refused(format!("the endpoint is not a URL: {e}")))?;
                if url.scheme() == "http" && !kling_http::is_loopback(&url) {
                    return Err(refused(format!(
                        "the endpoint {} is plain http; only https is allowed off loopback",
                        kling_http::redacted(raw)
                    )));
                }
                url.scheme() == "http"
            }
            None => false,
        };
        // object_store's client: the TLS provider this crate's clients use.
        let _ = kling_http::client_builder();
        let store = builder
            .with_bucket_name(bucket)
            .with_allow_http(plain_http)
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(120),
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| refused(e.to_string()))?;
        Ok(S3Uploader {
            store: Arc::new(store),
            target: target.trim_end_matches('/').to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            expiry: DEFAULT_EXPIRY,
        })
    }

    /// How long the URLs it hands out stay valid (24 hours unless set).
    #[must_use]
    pub fn expiry(mut self, expiry: Duration) -> S3Uploader {
        self.expiry = expiry;
        self
    }

    /// Where content with this SHA-256 goes, with its extension.
    fn key(&self, sha256: &str, extension: &str) -> Key {
        let name = format!("{sha256}{extension}");
        if self.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.prefix))
        }
    }

    /// Puts `source` under its key unless an object of its size is there.
    /// Returns the key and whether it was sent.
    async fn put(&self, what: &str, source: Source<'_>) -> Result<(Key, bool), Error> {
        let failed = |cause: String| upload_error(what, &self.target, cause);
        let (sha256, len) = source.digest().await.map_err(|e| failed(e.to_string()))?;
        let key = self.key(&sha256, source.extension());
        if let Ok(meta) = self.store.head(&key).await
            && meta.size == len
        {
            return Ok((key, false));
        }
        match source {
            Source::Bytes(data, _) => {
                self.store
                    .put(&key, PutPayload::from(data.to_vec()))
                    .await
                    .map_err(|e| failed(e.to_string()))?;
            }
            Source::File(path, _) if len <= PART_BYTES as u64 => {
                let data = tokio::fs::read(path)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                self.store
                    .put(&key, PutPayload::from(data))
                    .await
                    .map_err(|e| failed(e.to_string()))?;
            }
            Source::File(path, _) => {
                let upload = self
                    .store
                    .put_multipart(&key)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                let mut file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file
                        .read(&mut buf)
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    parts
                        .wait_for_capacity(PARTS_AT_ONCE)
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                    parts.write(&buf[..n]);
                }
                parts.finish().await.map_err(|e| failed(e.to_string()))?;
            }
        }
        Ok((key, true))
    }
}

/// What is uploaded.
enum Source<'a> {
    File(&'a std::path::Path, &'static str),
    Bytes(&'a [u8], &'static str),
}

impl Source<'_> {
    /// The content's SHA-256 (hex) and length, read in chunks.
    async fn digest(&self) -> std::io::Result<(String, u64)> {
        let mut hasher = Sha256::new();
        let len = match self {
            Source::Bytes(data, _) => {
                hasher.update(data);
                data.len() as u64
            }
            Source::File(path, _) => {
                let mut file = tokio::fs::File::open(path).await?;
                let mut buf = vec![0u8; 1 << 20];
                let mut len = 0;
                loop {
                    let n = file.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    len += n as u64;
                }
                file.rewind().await?;
                len
            }
        };
        Ok((format!("{:x}", hasher.finalize()), len))
    }

    fn extension(&self) -> &'static str {
        match self {
            Source::File(_, ext) | Source::Bytes(_, ext) => ext,
        }
    }
}

/// The extension a key gets from what the content is.
fn extension_of(content_type: &str) -> &'static str {
    match content_type {
        "video/mp4" => ".mp4",
        "video/quicktime" => ".mov",
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/webp" => ".webp",
        "image/gif" => ".gif",
        _ => "",
    }
}

/// An upload's error: no job was created, whatever happened.
fn upload_error(what: &str, target: &str, cause: String) -> Error {
    Error::Transport {
        provider: "uploader".to_owned(),
        delivery: Delivery::NotSent,
        attempt: Some(format!(
            "uploading {what} to {target} failed; no job was created"
        )),
        source: cause.into(),
    }
}

#[async_trait]
impl Uploader for S3Uploader {
    async fn upload(&self, media: &Media) -> Result<String, Error> {
        let content_type = |probed: Option<kling_core::probe::Probed>| {
            probed.map_or("application/octet-stream", |p| p.content_type())
        };
        let (what, source) = match media {
            Media::File(path) => {
                let probed = kling_core::probe::probe_file(path).ok();
                (
                    path.display().to_string(),
                    Source::File(path, extension_of(content_type(probed))),
                )
            }
            Media::Bytes { data, .. } => {
                let probed = kling_core::probe::probe_reader(std::io::Cursor::new(&data[..])).ok();
                (
                    format!("{} bytes", data.len()),
                    Source::Bytes(data, extension_of(content_type(probed))),
                )
            }
            Media::Url(url) => return Ok(url.clone()),
            _ => {
                return Err(upload_error(
                    "the input",
                    &self.target,
                    "this uploader takes files and bytes only".to_owned(),
                ));
            }
        };
        let (key, _sent) = self.put(&what, source).await?;
        let url = self
            .store
            .signed_url(reqwest::Method::GET, &key, self.expiry)
            .await
            .map_err(|e| upload_error(&what, &self.target, e.to_string()))?;
        Ok(url.to_string())
    }
}
