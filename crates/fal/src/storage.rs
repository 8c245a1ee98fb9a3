//! fal's own storage for local files, as fal's clients use it: initiate an
//! upload (`POST {rest}/storage/upload/initiate`), PUT the bytes to the
//! presigned URL it returns, and hand the file's URL to the model.

use async_trait::async_trait;
use kling_core::provider::Uploader;
use kling_core::{Delivery, Error, Media};
use kling_http::ApiClient;
use serde_json::json;

use crate::wire::UploadSlot;

/// Where an upload starts, under fal's REST address.
pub(crate) const INITIATE: &str = "/storage/upload/initiate";
/// The storage fal's clients ask for.
const STORAGE_TYPE: &str = "fal-cdn-v3";

/// Uploads local files to fal's storage: a fal user needs no bucket.
///
/// A file is read as it is sent, one chunk at a time, however large. The
/// key goes to fal's REST address only; the bytes go to the presigned URL
/// it hands out, without the key.
///
/// ```
/// use kling_core::provider::Uploader;
/// use kling_http::{ApiClient, KeyScheme};
///
/// let rest = ApiClient::new("fal", "https://rest.fal.ai", Some("key".into()))?
///     .with_key_scheme(KeyScheme::Key);
/// let storage = kling_fal::FalStorage::new(rest);
/// # let _: &dyn Uploader = &storage;
/// # Ok::<(), kling_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FalStorage {
    rest: ApiClient,
}

impl FalStorage {
    /// Uploads through `rest`, a client for fal's REST address with the key.
    pub fn new(rest: ApiClient) -> Self {
        FalStorage { rest }
    }
}

/// The MIME type fal is told, from the file's extension.
fn content_type(path: &std::path::Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("mp4" | "m4v") => "video/mp4",
        Some("mov") => "video/quicktime",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        _ => "application/octet-stream",
    }
}

/// An upload's error: nothing paid may exist, whatever happened. A refused
/// key stays what it is, so the user learns the key is wrong.
fn failed(what: &str, cause: String) -> Error {
    Error::Transport {
        provider: crate::NAME.to_owned(),
        delivery: Delivery::NotSent,
        attempt: Some(format!(
            "uploading {what} to fal's storage failed; no job was created"
        )),
        source: cause.into(),
    }
}

/// Refuses a slot whose upload URL is not https (plain http on loopback
/// only: the file would travel in the clear) or whose file URL is empty.
fn check_slot(slot: &UploadSlot) -> Result<(), String> {
    let upload = url::Url::parse(&slot.upload_url)
        .map_err(|e| format!("fal's storage gave an upload URL that is not a URL ({e})"))?;
    let safe = upload.scheme() == "https"
        || (upload.scheme() == "http" && kling_http::is_loopback(&upload));
    if !safe {
        return Err(format!(
            "fal's storage gave an upload URL that is not https: {}",
            kling_http::redacted(&slot.upload_url)
        ));
    }
    if slot.file_url.trim().is_empty() {
        return Err("fal's storage gave an empty file URL".to_owned());
    }
    Ok(())
}

#[async_trait]
impl Uploader for FalStorage {
    async fn upload(&self, media: &Media) -> Result<String, Error> {
        let (what, name, content_type, body, len) = match media {
            Media::Url(url) => return Ok(url.clone()),
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
                let name = path
                    .file_name()
                    .map_or_else(|| "upload".to_owned(), |n| n.to_string_lossy().into_owned());
                (
                    path.display().to_string(),
                    name,
                    content_type(path).to_owned(),
                    kling_http::file_body(file, len),
                    len,
                )
            }
            Media::Bytes { data, content_type } => (
                format!("{} bytes", data.len()),
                "upload".to_owned(),
                content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
                reqwest::Body::from(data.to_vec()),
                data.len() as u64,
            ),
            other => {
                return Err(Error::unsupported(
                    crate::NAME,
                    format!("uploading {other} to fal's storage"),
                ));
            }
        };
        let slot = self
            .rest
            .post_repeatable(
                INITIATE,
                &[("storage_type", STORAGE_TYPE)],
                &json!({ "content_type": content_type, "file_name": name }),
            )
            .await
            .map_err(|e| match e {
                e @ (Error::Auth { .. } | Error::InvalidKey { .. }) => e,
                e => failed(&what, e.to_string()),
            })?;
        let slot: UploadSlot = serde_json::from_value(slot.clone()).map_err(|e| {
            failed(
                &what,
                format!("fal's storage answered without upload_url and file_url ({e}): {slot}"),
            )
        })?;
        check_slot(&slot).map_err(|why| failed(&what, why))?;
        self.rest
            .put_presigned(&slot.upload_url, &content_type, body, len)
            .await
            .map_err(|why| failed(&what, why))?;
        Ok(slot.file_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_must_upload_over_https_and_name_the_file() {
        let slot = |upload: &str, file: &str| UploadSlot {
            upload_url: upload.to_owned(),
            file_url: file.to_owned(),
        };
        assert!(
            check_slot(&slot(
                "https://up.example/x?sig=1",
                "https://v3.fal.media/f"
            ))
            .is_ok()
        );
        assert!(
            check_slot(&slot(
                "http://127.0.0.1:9/put/1?token=t",
                "http://127.0.0.1:9/f"
            ))
            .is_ok()
        );
        let err = check_slot(&slot("http://up.example/x?sig=secret", "f")).unwrap_err();
        assert!(
            err.contains("not https") && !err.contains("secret"),
            "{err}"
        );
        assert!(check_slot(&slot("not a url", "f")).is_err());
        assert!(check_slot(&slot("https://up.example/x", " ")).is_err());
    }

    #[test]
    fn content_types_follow_the_extension() {
        for (name, expected) in [
            ("clip.MP4", "video/mp4"),
            ("clip.mov", "video/quicktime"),
            ("a.jpeg", "image/jpeg"),
            ("a.webp", "image/webp"),
            ("noext", "application/octet-stream"),
        ] {
            assert_eq!(content_type(std::path::Path::new(name)), expected, "{name}");
        }
    }
}
