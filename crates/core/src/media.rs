//! Media inputs: a URL, a local file, or bytes in memory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A video or image given to a request.
///
/// How a local file or bytes reach the provider is the adapter's business:
/// some providers take inline data, others need a URL from an uploader.
///
/// In serialized form (request files, the job journal) a plain string is a
/// URL when it has a scheme (`https://…`) and a file path otherwise; the
/// explicit forms are `{"url": …}`, `{"file": …}` and
/// `{"data": BASE64, "content_type": …}`.
///
/// ```
/// use kling_core::Media;
///
/// let remote = Media::url("https://example.com/clip.mp4");
/// let local = Media::file("clip.mp4");
/// let inline = Media::bytes(vec![0x89, b'P', b'N', b'G'], Some("image/png"));
///
/// let parsed: Media = serde_json::from_str(r#""https://example.com/clip.mp4""#).unwrap();
/// assert_eq!(parsed, remote);
/// let parsed: Media = serde_json::from_str(r#""clip.mp4""#).unwrap();
/// assert_eq!(parsed, local);
/// assert_eq!(inline.to_string(), "4 bytes of image/png");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Media {
    /// A URL the provider fetches itself. Only `http` and `https` pass validation.
    Url(String),
    /// A file on the local disk, probed before anything is sent.
    File(PathBuf),
    /// Bytes held in memory.
    Bytes {
        /// The content.
        data: Arc<[u8]>,
        /// Its MIME type, when known (`video/mp4`, `image/png`).
        content_type: Option<String>,
    },
}

impl Media {
    /// A URL the provider will fetch.
    pub fn url(url: impl Into<String>) -> Self {
        Media::Url(url.into())
    }

    /// A local file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Media::File(path.into())
    }

    /// Bytes in memory, with their MIME type when known.
    pub fn bytes(data: impl Into<Arc<[u8]>>, content_type: Option<&str>) -> Self {
        Media::Bytes {
            data: data.into(),
            content_type: content_type.map(str::to_owned),
        }
    }

    /// The URL, when this is one.
    pub fn as_url(&self) -> Option<&str> {
        match self {
            Media::Url(url) => Some(url),
            _ => None,
        }
    }

    /// The local path, when this is a file.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Media::File(path) => Some(path),
            _ => None,
        }
    }

    /// Reads a string the way request files write media: a URL when it has
    /// a scheme, a file path otherwise.
    fn from_plain(s: String) -> Self {
        if has_scheme(&s) {
            Media::Url(s)
        } else {
            Media::File(PathBuf::from(s))
        }
    }
}

/// Whether `s` starts with `scheme:` followed by `//`, or is a `data:` URI.
fn has_scheme(s: &str) -> bool {
    if s.starts_with("data:") {
        return true;
    }
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

impl std::str::FromStr for Media {
    type Err = std::convert::Infallible;

    /// A URL when the string has a scheme (`https://…`), a file path
    /// otherwise: how the command line and request files read media.
    ///
    /// ```
    /// use kling_core::Media;
    ///
    /// assert_eq!("https://a.example/v.mp4".parse(), Ok(Media::url("https://a.example/v.mp4")));
    /// assert_eq!("clips/v.mp4".parse(), Ok(Media::file("clips/v.mp4")));
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Media::from_plain(s.to_owned()))
    }
}

impl From<PathBuf> for Media {
    fn from(path: PathBuf) -> Self {
        Media::File(path)
    }
}

impl From<&Path> for Media {
    fn from(path: &Path) -> Self {
        Media::File(path.to_owned())
    }
}

impl fmt::Debug for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Media::Url(url) => f.debug_tuple("Url").field(url).finish(),
            Media::File(path) => f.debug_tuple("File").field(path).finish(),
            // The content itself is not useful in a debug dump and may be large.
            Media::Bytes { data, content_type } => f
                .debug_struct("Bytes")
                .field("len", &data.len())
                .field("content_type", content_type)
                .finish(),
        }
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Media::Url(url) => f.write_str(url),
            Media::File(path) => write!(f, "{}", path.display()),
            Media::Bytes { data, content_type } => {
                write!(f, "{} bytes", data.len())?;
                match content_type {
                    Some(content_type) => write!(f, " of {content_type}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Whether an input is meant as a video or an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A video.
    Video,
    /// A still image.
    Image,
}

impl MediaKind {
    /// What a file's extension says it is meant to be, if it says.
    ///
    /// ```
    /// use kling_core::media::MediaKind;
    /// use std::path::Path;
    ///
    /// assert_eq!(MediaKind::from_extension(Path::new("a.MOV")), Some(MediaKind::Video));
    /// assert_eq!(MediaKind::from_extension(Path::new("a.jpeg")), Some(MediaKind::Image));
    /// assert_eq!(MediaKind::from_extension(Path::new("a.bin")), None);
    /// ```
    pub fn from_extension(path: &Path) -> Option<MediaKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "mp4" | "m4v" | "mov" | "qt" | "webm" | "mkv" | "avi" | "wmv" | "flv" | "ts"
            | "mts" => Some(MediaKind::Video),
            "jpg" | "jpeg" | "png" | "webp" | "gif" | "heic" | "heif" | "avif" | "bmp" | "tif"
            | "tiff" => Some(MediaKind::Image),
            _ => None,
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MediaKind::Video => "video",
            MediaKind::Image => "image",
        })
    }
}

/// The serialized forms of [`Media`].
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum MediaRepr {
    Plain(String),
    Url {
        url: String,
    },
    File {
        file: PathBuf,
    },
    Data {
        data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
}

impl Serialize for Media {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let repr = match self {
            Media::Url(url) if has_scheme(url) => MediaRepr::Plain(url.clone()),
            Media::Url(url) => MediaRepr::Url { url: url.clone() },
            Media::File(path) => match path.to_str() {
                Some(plain) if !has_scheme(plain) => MediaRepr::Plain(plain.to_owned()),
                _ => MediaRepr::File { file: path.clone() },
            },
            Media::Bytes { data, content_type } => MediaRepr::Data {
                data: base64::engine::general_purpose::STANDARD.encode(data),
                content_type: content_type.clone(),
            },
        };
        repr.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Media {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match MediaRepr::deserialize(deserializer)? {
            MediaRepr::Plain(s) => Media::from_plain(s),
            MediaRepr::Url { url } => Media::Url(url),
            MediaRepr::File { file } => Media::File(file),
            MediaRepr::Data { data, content_type } => {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(data.as_bytes())
                    .map_err(|e| {
                        serde::de::Error::custom(format!("media data is not base64: {e}"))
                    })?;
                Media::Bytes {
                    data: data.into(),
                    content_type,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_strings_are_urls_only_with_a_scheme() {
        for (input, expected) in [
            (
                "https://a.example/v.mp4",
                Media::url("https://a.example/v.mp4"),
            ),
            ("ftp://a.example/v.mp4", Media::url("ftp://a.example/v.mp4")),
            (
                "data:video/mp4;base64,AAAA",
                Media::url("data:video/mp4;base64,AAAA"),
            ),
            ("clips/v.mp4", Media::file("clips/v.mp4")),
            ("C:\\clips\\v.mp4", Media::file("C:\\clips\\v.mp4")),
            ("://odd", Media::file("://odd")),
            ("weird name://x", Media::file("weird name://x")),
        ] {
            let json = serde_json::to_string(input).unwrap();
            assert_eq!(
                serde_json::from_str::<Media>(&json).unwrap(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn every_form_round_trips() {
        for media in [
            Media::url("https://a.example/v.mp4"),
            Media::url("not a url"),
            Media::file("v.mp4"),
            Media::file("https://looks-like-a-url"),
            Media::bytes(vec![1, 2, 3], Some("video/mp4")),
            Media::bytes(Vec::new(), None),
        ] {
            let json = serde_json::to_string(&media).unwrap();
            assert_eq!(
                serde_json::from_str::<Media>(&json).unwrap(),
                media,
                "{json}"
            );
        }
    }

    #[test]
    fn bad_base64_is_an_error() {
        let err = serde_json::from_str::<Media>(r#"{"data": "***"}"#).unwrap_err();
        assert!(
            err.to_string().contains("media data is not base64"),
            "{err}"
        );
    }

    #[test]
    fn debug_does_not_dump_bytes() {
        let media = Media::bytes(vec![7; 1000], None);
        assert_eq!(
            format!("{media:?}"),
            "Bytes { len: 1000, content_type: None }"
        );
    }
}
