//! Local inputs put into an S3 bucket, handed to the provider as presigned
//! `GET` URLs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kling_core::{Error, Media};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::signer::Signer as _;
use object_store::{ClientConfigKey, ObjectStoreExt as _, PutPayload, RetryConfig, WriteMultipart};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use crate::upload::{Uploader, upload_error};

/// How long a presigned URL stays valid unless set: long enough for a job
/// queued for hours.
const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// Content up to this size goes up in one `PUT`; larger in parts of this
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
            // A part of 8 MiB takes minutes on a slow uplink: a request is
            // given 5 minutes, and each is retried on its own. (Set as one
            // key, so the caller's other client options stay.)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "300s")
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
        if len <= PART_BYTES as u64 {
            let data = match source {
                Source::Bytes(data, _) => data.to_vec(),
                Source::File(path, _) => tokio::fs::read(path)
                    .await
                    .map_err(|e| failed(e.to_string()))?,
            };
            // What is sent must be what was named: a file rewritten since
            // it was hashed would sit under another content's key.
            if hex_sha256(&data) != sha256 {
                return Err(failed(CHANGED.to_owned()));
            }
            self.store
                .put(&key, PutPayload::from(data))
                .await
                .map_err(|e| failed(s3_reason(&e)))?;
            return Ok((key, true));
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| failed(s3_reason(&e)))?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        match send_parts(&mut parts, &source, &sha256).await {
            Ok(()) => {
                parts.finish().await.map_err(|e| failed(s3_reason(&e)))?;
                Ok((key, true))
            }
            Err(cause) => {
                // Parts left in a bucket are kept (and billed) until aborted.
                let _ = parts.abort().await;
                Err(failed(cause))
            }
        }
    }
}

/// Why a file's upload stopped: it no longer matches its digest.
const CHANGED: &str = "the file changed while it was uploaded (its SHA-256 is not the one \
                       it was stored under); nothing was kept";

/// Sends `source` through `parts`, a few parts in flight, hashing what it
/// sends: an error when the content is not the one `sha256` names.
async fn send_parts(
    parts: &mut WriteMultipart,
    source: &Source<'_>,
    sha256: &str,
) -> Result<(), String> {
    let mut hasher = Sha256::new();
    let mut send = async |chunk: &[u8], parts: &mut WriteMultipart| -> Result<(), String> {
        parts
            .wait_for_capacity(PARTS_AT_ONCE)
            .await
            .map_err(|e| s3_reason(&e))?;
        hasher.update(chunk);
        parts.write(chunk);
        Ok(())
    };
    match source {
        Source::Bytes(data, _) => {
            for chunk in data.chunks(READ_BYTES) {
                send(chunk, parts).await?;
            }
        }
        Source::File(path, _) => {
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; READ_BYTES];
            loop {
                let n = file.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                send(&buf[..n], parts).await?;
            }
        }
    }
    if format!("{:x}", hasher.finalize()) == sha256 {
        Ok(())
    } else {
        Err(CHANGED.to_owned())
    }
}

/// How much of a file is read at once.
const READ_BYTES: usize = 1 << 20;

fn hex_sha256(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// What an object store error says, without what the server's error body
/// may echo (S3 echoes the signed request, headers and session token
/// included): S3's code and message when there are some, else the text
/// before any body.
fn s3_reason(error: &object_store::Error) -> String {
    let text = error.to_string();
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find('<')? + start;
        Some(text[start..end].to_owned())
    };
    if let Some(code) = tag("Code") {
        let message = tag("Message").unwrap_or_default();
        return format!("the store refused it: {code}: {message}");
    }
    let plain = text.split('<').next().unwrap_or_default();
    plain.chars().take(300).collect()
}

/// What is uploaded.
enum Source<'a> {
    File(&'a std::path::Path, &'static str),
    Bytes(&'a [u8], &'static str),
}

impl Source<'_> {
    /// The content's SHA-256 (hex) and length, read in chunks.
    async fn digest(&self) -> std::io::Result<(String, u64)> {
        match self {
            Source::Bytes(data, _) => Ok((hex_sha256(data), data.len() as u64)),
            Source::File(path, _) => {
                let mut hasher = Sha256::new();
                let mut file = tokio::fs::File::open(path).await?;
                let mut buf = vec![0u8; READ_BYTES];
                let mut len = 0;
                loop {
                    let n = file.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    len += n as u64;
                }
                Ok((format!("{:x}", hasher.finalize()), len))
            }
        }
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
            .map_err(|e| upload_error(&what, &self.target, s3_reason(&e)))?;
        Ok(url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::s3_reason;

    #[test]
    fn a_store_error_keeps_s3_s_code_and_message_and_drops_the_echoed_request() {
        let body = "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature \
                    does not match</Message><CanonicalRequest>PUT /b/k\nx-amz-security-token:\
                    SESSION-TOKEN</CanonicalRequest></Error>";
        let error = object_store::Error::Generic {
            store: "S3",
            source: format!("Client error with status 403 Forbidden: {body}").into(),
        };
        let reason = s3_reason(&error);
        assert!(reason.contains("SignatureDoesNotMatch"), "{reason}");
        assert!(reason.contains("does not match"), "{reason}");
        assert!(!reason.contains("SESSION-TOKEN"), "{reason}");
        let plain = object_store::Error::Generic {
            store: "S3",
            source: "connection refused <html>SESSION-TOKEN</html>".into(),
        };
        assert!(!s3_reason(&plain).contains("SESSION-TOKEN"));
    }
}
