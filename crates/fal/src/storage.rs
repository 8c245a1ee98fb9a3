//! fal's own storage for local files, as fal's clients use it: initiate an
//! upload (`POST {rest}/storage/upload/initiate`), PUT the bytes to the
//! presigned URL it returns, and hand the file's URL to the model. Above
//! 90 MiB, as fal's clients do, the file goes up in 10 MiB parts
//! (`…/initiate-multipart`, a PUT per part, a POST to complete).

use async_trait::async_trait;
use kling_core::provider::Uploader;
use kling_core::{Delivery, Error, Media};
use kling_http::ApiClient;
use serde_json::json;

use crate::wire::UploadSlot;

/// Where an upload starts, under fal's REST address.
pub(crate) const INITIATE: &str = "/storage/upload/initiate";
/// Where an upload in parts starts.
const INITIATE_MULTIPART: &str = "/storage/upload/initiate-multipart";
/// Files larger than this go up in parts, as fal's clients send them.
const MULTIPART_ABOVE: u64 = 90 * 1024 * 1024;
/// The size of a part: what is held in memory at once.
const PART_BYTES: usize = 10 * 1024 * 1024;
/// How often a part is tried.
const PART_TRIES: u32 = 3;
/// The storage fal's clients ask for.
const STORAGE_TYPE: &str = "fal-cdn-v3";

/// Uploads local files to fal's storage: a fal user needs no bucket.
///
/// A file is read as it is sent, one chunk at a time (one 10 MiB part at
/// a time above 90 MiB), however large. The key goes to fal's REST address
/// only; the bytes go to the presigned URL it hands out, without the key.
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

/// What is uploaded: a file, read as it is sent, or bytes.
enum Source {
    File(tokio::fs::File),
    Bytes(std::sync::Arc<[u8]>),
}

/// One upload: what it is (for errors), its name, type, content and size.
struct Upload {
    what: String,
    name: String,
    content_type: String,
    source: Source,
    len: u64,
}

impl FalStorage {
    /// Starts an upload at `path` (single or multipart): its slot.
    async fn initiate(&self, path: &str, upload: &Upload) -> Result<UploadSlot, Error> {
        let slot = self
            .rest
            .post_repeatable(
                path,
                &[("storage_type", STORAGE_TYPE)],
                &json!({ "content_type": upload.content_type, "file_name": upload.name }),
            )
            .await
            .map_err(|e| match e {
                e @ (Error::Auth { .. } | Error::InvalidKey { .. }) => e,
                e => failed(&upload.what, e.to_string()),
            })?;
        let slot: UploadSlot = serde_json::from_value(slot.clone()).map_err(|e| {
            failed(
                &upload.what,
                format!("fal's storage answered without upload_url and file_url ({e}): {slot}"),
            )
        })?;
        check_slot(&slot).map_err(|why| failed(&upload.what, why))?;
        Ok(slot)
    }

    /// One PUT of the whole content.
    async fn single(&self, upload: Upload) -> Result<String, Error> {
        let slot = self.initiate(INITIATE, &upload).await?;
        let body = match upload.source {
            Source::File(file) => kling_http::file_body(file, upload.len),
            Source::Bytes(data) => reqwest::Body::from(data.to_vec()),
        };
        self.rest
            .send_presigned(
                reqwest::Method::PUT,
                &slot.upload_url,
                &upload.content_type,
                body,
                upload.len,
            )
            .await
            .map_err(|why| failed(&upload.what, why))?;
        Ok(slot.file_url)
    }

    /// Parts of [`PART_BYTES`], each PUT to `{upload_url path}/{n}` (tried
    /// up to [`PART_TRIES`] times: a part is held in memory, so it can be
    /// sent again), then a POST to `…/complete` with every part's etag, as
    /// fal's clients do above [`MULTIPART_ABOVE`].
    async fn multipart(&self, mut upload: Upload) -> Result<String, Error> {
        let slot = self.initiate(INITIATE_MULTIPART, &upload).await?;
        let what = upload.what.clone();
        let target = url::Url::parse(&slot.upload_url)
            .map_err(|e| failed(&what, format!("the upload URL is not a URL ({e})")))?;
        let mut parts = Vec::new();
        let mut sent: u64 = 0;
        for number in 1_u32.. {
            let part = next_part(&mut upload.source, sent, upload.len)
                .await
                .map_err(|e| failed(&what, e.to_string()))?;
            if part.is_empty() {
                break;
            }
            sent += part.len() as u64;
            let url = beside(&target, &number.to_string());
            let mut tried = 0;
            let answer = loop {
                tried += 1;
                let body = reqwest::Body::from(part.clone());
                match self
                    .rest
                    .send_presigned(
                        reqwest::Method::PUT,
                        &url,
                        &upload.content_type,
                        body,
                        part.len() as u64,
                    )
                    .await
                {
                    Ok(answer) => break answer,
                    Err(why) if tried >= PART_TRIES => {
                        return Err(failed(&what, format!("part {number}: {why}")));
                    }
                    Err(_) => {}
                }
            };
            let etag = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| {
                    v.get("etag")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                })
                .ok_or_else(|| {
                    failed(&what, format!("part {number} was answered without an etag"))
                })?;
            parts.push(json!({ "partNumber": number, "etag": etag }));
        }
        if sent != upload.len {
            return Err(failed(
                &what,
                format!(
                    "the file changed while it was sent: {} bytes expected, {sent} read",
                    upload.len
                ),
            ));
        }
        let complete = json!({ "parts": parts }).to_string();
        let len = complete.len() as u64;
        self.rest
            .send_presigned(
                reqwest::Method::POST,
                &beside(&target, "complete"),
                "application/json",
                reqwest::Body::from(complete),
                len,
            )
            .await
            .map_err(|why| failed(&what, why))?;
        Ok(slot.file_url)
    }
}

/// `target` with `last` added to its path, its query kept: where a part
/// goes, and where the upload completes.
fn beside(target: &url::Url, last: &str) -> String {
    let mut url = target.clone();
    let path = format!("{}/{last}", target.path().trim_end_matches('/'));
    url.set_path(&path);
    url.to_string()
}

/// The next part of `source`, from `sent` of `len` bytes: at most
/// [`PART_BYTES`], empty at the end.
async fn next_part(source: &mut Source, sent: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let want =
        usize::try_from(len.saturating_sub(sent).min(PART_BYTES as u64)).unwrap_or(PART_BYTES);
    match source {
        Source::Bytes(data) => {
            let start = usize::try_from(sent).unwrap_or(usize::MAX).min(data.len());
            let end = start.saturating_add(want).min(data.len());
            Ok(data[start..end].to_vec())
        }
        Source::File(file) => {
            let mut part = vec![0; want];
            let mut filled = 0;
            while filled < want {
                let read = file.read(&mut part[filled..]).await?;
                if read == 0 {
                    break;
                }
                filled += read;
            }
            part.truncate(filled);
            Ok(part)
        }
    }
}

#[async_trait]
impl Uploader for FalStorage {
    async fn upload(&self, media: &Media) -> Result<String, Error> {
        let upload = match media {
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
                Upload {
                    what: path.display().to_string(),
                    name: path
                        .file_name()
                        .map_or_else(|| "upload".to_owned(), |n| n.to_string_lossy().into_owned()),
                    content_type: content_type(path).to_owned(),
                    source: Source::File(file),
                    len,
                }
            }
            Media::Bytes { data, content_type } => Upload {
                what: format!("{} bytes", data.len()),
                name: "upload".to_owned(),
                content_type: content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
                len: data.len() as u64,
                source: Source::Bytes(std::sync::Arc::clone(data)),
            },
            other => {
                return Err(Error::unsupported(
                    crate::NAME,
                    format!("uploading {other} to fal's storage"),
                ));
            }
        };
        if upload.len > MULTIPART_ABOVE {
            self.multipart(upload).await
        } else {
            self.single(upload).await
        }
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
    fn parts_and_the_completion_sit_beside_the_upload_url() {
        let target = url::Url::parse("https://up.example/multipart/abc?token=t&x=1").unwrap();
        assert_eq!(
            beside(&target, "3"),
            "https://up.example/multipart/abc/3?token=t&x=1"
        );
        assert_eq!(
            beside(&target, "complete"),
            "https://up.example/multipart/abc/complete?token=t&x=1"
        );
    }

    #[tokio::test]
    async fn parts_are_at_most_10_mib_and_cover_the_bytes() {
        let data: std::sync::Arc<[u8]> =
            (0..25 * 1024 * 1024_u32).map(|i| (i % 251) as u8).collect();
        let len = data.len() as u64;
        let mut source = Source::Bytes(std::sync::Arc::clone(&data));
        let mut sent = 0;
        let mut sizes = Vec::new();
        loop {
            let part = next_part(&mut source, sent, len).await.unwrap();
            if part.is_empty() {
                break;
            }
            assert_eq!(
                part[..],
                data[usize::try_from(sent).unwrap()..][..part.len()]
            );
            sent += part.len() as u64;
            sizes.push(part.len());
        }
        assert_eq!(sizes, [PART_BYTES, PART_BYTES, 5 * 1024 * 1024]);
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
