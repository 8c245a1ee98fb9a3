//! JSON bodies that carry local files inline as `data:` URIs, encoded while
//! they are sent.
//!
//! A 150 MB video is 200 MB of base64. Building that string, then the JSON
//! around it, would hold several copies in memory; here the JSON is split at
//! the places where files go, and each file is read and base64-encoded one
//! chunk at a time as the request body is written. Memory stays at a few
//! chunks, whatever the file's size.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::Stream;
use kling_core::probe::{self, Probed};
use kling_core::rules::Violation;
use kling_core::{Error, Media};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Raw bytes read per chunk: a multiple of 3, so each chunk encodes to
/// base64 without padding and chunks can be joined as they are.
const CHUNK: usize = 3 * 64 * 1024;

/// Collects the local files of a body and the placeholders that stand for
/// them, then builds the [`InlineBody`].
///
/// ```
/// use kling_core::Media;
/// use kling_http::inline::Inliner;
/// use serde_json::json;
///
/// let mut inliner = Inliner::new();
/// let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x01\x90\0\0\x01\x2c\x08\x06\0\0\0";
/// let placeholder = inliner.place("image", &Media::bytes(&png[..], Some("image/png")), None)?;
/// let body = inliner.finish(&json!({ "prompt": "Bloom", "image_url": placeholder }));
///
/// let text = "data:image/png;base64,".len() + png.len().div_ceil(3) * 4;
/// assert_eq!(body.len(), (r#"{"prompt":"Bloom","image_url":""}"#.len() + text) as u64);
/// # Ok::<(), kling_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Inliner {
    marker: String,
    sources: Vec<Source>,
}

/// Where one inline file's bytes come from.
#[derive(Debug, Clone)]
enum Source {
    File {
        path: PathBuf,
        size: u64,
        content_type: &'static str,
    },
    Bytes {
        data: Arc<[u8]>,
        content_type: String,
    },
}

impl Source {
    fn content_type(&self) -> &str {
        match self {
            Source::File { content_type, .. } => content_type,
            Source::Bytes { content_type, .. } => content_type,
        }
    }

    fn size(&self) -> u64 {
        match self {
            Source::File { size, .. } => *size,
            Source::Bytes { data, .. } => data.len() as u64,
        }
    }

    fn prefix(&self) -> String {
        format!("data:{};base64,", self.content_type())
    }

    /// The length of the `data:` URI this source becomes.
    fn encoded_len(&self) -> u64 {
        self.prefix().len() as u64 + self.size().div_ceil(3) * 4
    }
}

impl Default for Inliner {
    fn default() -> Self {
        Self::new()
    }
}

impl Inliner {
    /// An inliner with a placeholder marker no prompt will contain by
    /// chance.
    pub fn new() -> Self {
        Inliner {
            marker: format!("\u{1}kling-inline-{:016x}-", fastrand::u64(..)),
            sources: Vec::new(),
        }
    }

    /// The placeholder string to put in the JSON where `media` goes. A
    /// file's size and content type come from `probed`, what validation
    /// found (a checked request's [`CheckedInput`](kling_core::CheckedInput)),
    /// or else are read now (its headers only).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] when the file cannot be read, or when
    /// `media` is a URL, which has nothing to inline.
    pub fn place(
        &mut self,
        field: &str,
        media: &Media,
        probed: Option<&Probed>,
    ) -> Result<String, Error> {
        let source = Self::source(field, media, probed)?;
        let placeholder = format!("{}{}\u{1}", self.marker, self.sources.len());
        self.sources.push(source);
        Ok(placeholder)
    }

    fn source(field: &str, media: &Media, probed: Option<&Probed>) -> Result<Source, Error> {
        let local = |reason: String| -> Error {
            Violation::FileUnreadable {
                field: field.to_owned(),
                reason,
            }
            .into()
        };
        let source = match media {
            Media::File(path) => {
                let probed = match probed {
                    Some(probed) => probed.clone(),
                    None => probe::probe_file(path)
                        .map_err(|e| local(format!("{}: {e}", path.display())))?,
                };
                Source::File {
                    path: path.clone(),
                    size: probed.size_bytes(),
                    content_type: probed.content_type(),
                }
            }
            Media::Bytes { data, content_type } => {
                let content_type = match content_type {
                    Some(known) => known.clone(),
                    None => probe::probe_reader(io::Cursor::new(&data[..]))
                        .map_or("application/octet-stream", |p| p.content_type())
                        .to_owned(),
                };
                Source::Bytes {
                    data: Arc::clone(data),
                    content_type,
                }
            }
            other => return Err(local(format!("{other} is a URL, not a local file"))),
        };
        Ok(source)
    }

    /// What stands for `media` in a dry run: the start of its `data:` URI,
    /// with the file and its size, as nothing is read yet.
    ///
    /// ```
    /// use kling_core::Media;
    /// use kling_http::inline::Inliner;
    ///
    /// let text = Inliner::describe("video", &Media::bytes(&b"1234"[..], Some("video/mp4")), None)?;
    /// assert_eq!(text, "data:video/mp4;base64,… (4 bytes, inline)");
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Inliner::place`].
    pub fn describe(field: &str, media: &Media, probed: Option<&Probed>) -> Result<String, Error> {
        let source = Self::source(field, media, probed)?;
        let what = match &source {
            Source::File { path, size, .. } => format!("{}, {size} bytes", path.display()),
            Source::Bytes { data, .. } => format!("{} bytes", data.len()),
        };
        Ok(format!("{}… ({what}, inline)", source.prefix()))
    }

    /// The body: `json` with every placeholder replaced by its file as a
    /// `data:` URI, produced when sent.
    pub fn finish(self, json: &Value) -> InlineBody {
        // Serialized, the marker's \u0001 is escaped: look for that form.
        let marker = serde_json::to_string(&self.marker)
            .map(|quoted| quoted.trim_matches('"').to_owned())
            .unwrap_or_default();
        let end = "\\u0001";
        let text = json.to_string();
        let mut parts = Vec::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(&marker) {
            parts.push(Part::Text(rest.as_bytes()[..at].to_vec()));
            let after = &rest[at + marker.len()..];
            let digits = after.find(end).unwrap_or(after.len());
            let ours = after[..digits]
                .parse::<usize>()
                .ok()
                .and_then(|i| self.sources.get(i));
            if let Some(source) = ours {
                parts.push(Part::Inline(source.clone()));
            } else {
                // Not one of ours: leave the text as it was.
                let through = (at + marker.len() + digits + end.len()).min(rest.len());
                parts.push(Part::Text(rest.as_bytes()[at..through].to_vec()));
            }
            rest = after.get(digits + end.len()..).unwrap_or_default();
        }
        parts.push(Part::Text(rest.as_bytes().to_vec()));
        let len = parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.len() as u64,
                Part::Inline(source) => source.encoded_len(),
            })
            .sum();
        InlineBody { parts, len }
    }
}

#[derive(Debug)]
enum Part {
    Text(Vec<u8>),
    Inline(Source),
}

/// A JSON request body whose local files are read and encoded as it is
/// sent. Its length is known in advance, so it goes with a
/// `Content-Length`.
#[derive(Debug)]
pub struct InlineBody {
    parts: Vec<Part>,
    len: u64,
}

impl InlineBody {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty (it never is: it is a JSON object).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body as a stream of chunks. `failed` is set when producing it
    /// fails here (a file that vanished or changed size), so the caller
    /// knows the provider cannot have received a complete body.
    pub(crate) fn into_stream(
        self,
        failed: Arc<AtomicBool>,
    ) -> impl Stream<Item = Result<Vec<u8>, io::Error>> + Send + 'static {
        let state = Producer {
            parts: self.parts.into_iter(),
            reading: None,
        };
        futures_util::stream::try_unfold(state, move |mut state| {
            let failed = Arc::clone(&failed);
            async move {
                match state.next_chunk().await {
                    Ok(Some(chunk)) => Ok(Some((chunk, state))),
                    Ok(None) => Ok(None),
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        Err(e)
                    }
                }
            }
        })
    }

    /// The whole body in memory, for tests and small bodies.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or changed size.
    pub async fn collect(self) -> Result<Vec<u8>, io::Error> {
        use futures_util::TryStreamExt as _;
        let chunks: Vec<Vec<u8>> = self
            .into_stream(Arc::new(AtomicBool::new(false)))
            .try_collect()
            .await?;
        Ok(chunks.concat())
    }
}

/// Reading one inline source.
struct Reading {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    left: u64,
    what: String,
}

struct Producer {
    parts: std::vec::IntoIter<Part>,
    reading: Option<Reading>,
}

impl Producer {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, io::Error> {
        loop {
            if let Some(reading) = &mut self.reading {
                let mut raw = vec![0; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    let n = reading.reader.read(&mut raw[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                raw.truncate(filled);
                let filled = filled as u64;
                if filled > reading.left || (filled == 0 && reading.left > 0) {
                    return Err(io::Error::other(format!(
                        "{} changed size while it was being sent",
                        reading.what
                    )));
                }
                reading.left -= filled;
                if filled == 0 {
                    self.reading = None;
                    continue;
                }
                return Ok(Some(STANDARD.encode(&raw).into_bytes()));
            }
            match self.parts.next() {
                None => return Ok(None),
                Some(Part::Text(text)) if text.is_empty() => {}
                Some(Part::Text(text)) => return Ok(Some(text)),
                Some(Part::Inline(source)) => {
                    let prefix = source.prefix().into_bytes();
                    let left = source.size();
                    self.reading = Some(match source {
                        Source::File { path, .. } => Reading {
                            reader: Box::new(tokio::fs::File::open(&path).await.map_err(|e| {
                                io::Error::other(format!("cannot open {}: {e}", path.display()))
                            })?),
                            left,
                            what: path.display().to_string(),
                        },
                        Source::Bytes { data, .. } => Reading {
                            reader: Box::new(io::Cursor::new(data)),
                            left,
                            what: "the bytes".to_owned(),
                        },
                    });
                    return Ok(Some(prefix));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&width.to_be_bytes());
        png.extend_from_slice(&height.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0]);
        png
    }

    #[tokio::test]
    async fn files_become_data_uris_of_the_announced_length() {
        let dir = tempfile::tempdir().unwrap();
        // Sizes around a chunk boundary and its base64 padding.
        for size in [0, 1, 2, 3, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 2] {
            let mut content = png(400, 300);
            content.resize(size.max(content.len()), 7);
            let path = dir.path().join(format!("{size}.png"));
            std::fs::write(&path, &content).unwrap();

            let mut inliner = Inliner::new();
            let image = inliner.place("image", &Media::file(&path), None).unwrap();
            let bytes = inliner
                .place(
                    "last",
                    &Media::bytes(&b"abcd"[..], Some("image/webp")),
                    None,
                )
                .unwrap();
            let body = inliner.finish(&json!({
                "prompt": "a \"quoted\" prompt",
                "image_url": image,
                "tail": bytes,
            }));
            let announced = body.len();
            let sent = body.collect().await.unwrap();
            assert_eq!(sent.len() as u64, announced, "size {size}");
            let value: Value = serde_json::from_slice(&sent).unwrap();
            assert_eq!(value["prompt"], "a \"quoted\" prompt");
            let uri = value["image_url"].as_str().unwrap();
            let data = uri.strip_prefix("data:image/png;base64,").unwrap();
            assert_eq!(STANDARD.decode(data).unwrap(), content, "size {size}");
            assert_eq!(
                value["tail"],
                format!("data:image/webp;base64,{}", STANDARD.encode("abcd"))
            );
        }
    }

    #[tokio::test]
    async fn text_like_a_placeholder_is_left_alone() {
        let mut inliner = Inliner::new();
        let fake = format!("{}9\u{1}", inliner.marker);
        let real = inliner
            .place("video", &Media::bytes(&b"xyz"[..], Some("video/mp4")), None)
            .unwrap();
        let body = inliner.finish(&json!({ "prompt": fake, "video_url": real }));
        let sent: Value = serde_json::from_slice(&body.collect().await.unwrap()).unwrap();
        assert_eq!(sent["prompt"], fake.as_str());
        assert_eq!(sent["video_url"], "data:video/mp4;base64,eHl6");
    }

    #[tokio::test]
    async fn a_file_that_changes_size_fails_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrinks.png");
        let mut content = png(400, 300);
        content.resize(1000, 0);
        std::fs::write(&path, &content).unwrap();
        let mut inliner = Inliner::new();
        let image = inliner.place("image", &Media::file(&path), None).unwrap();
        let body = inliner.finish(&json!({ "image_url": image }));
        std::fs::write(&path, &content[..500]).unwrap();
        let failed = Arc::new(AtomicBool::new(false));
        let result: Result<Vec<Vec<u8>>, _> =
            futures_util::TryStreamExt::try_collect(body.into_stream(Arc::clone(&failed))).await;
        assert!(result.unwrap_err().to_string().contains("changed size"));
        assert!(failed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_url_has_nothing_to_inline() {
        let err = Inliner::new()
            .place("video", &Media::url("https://example.com/a.mp4"), None)
            .unwrap_err();
        assert!(err.to_string().contains("video"), "{err}");
    }
}
