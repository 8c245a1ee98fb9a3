//! Local media probing: what a file is, how long and how large it is, read
//! from its headers alone.
//!
//! A video's `mdat` is never read: probing a 150 MB MP4 reads its box
//! headers and its `moov`, whether `moov` is at the front or the end. Every
//! length in the file is checked before it is used, so any bytes, however
//! broken or hostile, give an error and never a panic, and memory stays
//! under a fixed cap (the largest `moov` read is 16 MiB).
//!
//! ```
//! use kling_core::probe::{self, Probed};
//!
//! // The smallest valid PNG header: 400 x 300.
//! let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
//! png.extend_from_slice(&400u32.to_be_bytes());
//! png.extend_from_slice(&300u32.to_be_bytes());
//! png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
//!
//! match probe::probe_reader(std::io::Cursor::new(png))? {
//!     Probed::Image(image) => assert_eq!((image.width, image.height), (400, 300)),
//!     Probed::Video(_) => unreachable!(),
//! }
//! # Ok::<(), kling_core::probe::ProbeError>(())
//! ```

mod mp4;
pub mod remote;
mod sniff;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

pub use crate::media::MediaKind;

/// The container of a video file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Container {
    /// ISO base media (MP4) with an `ftyp` brand other than QuickTime's.
    Mp4,
    /// QuickTime (`.mov`): brand `qt  `, or no `ftyp` at all.
    QuickTime,
}

/// The video track of a file, as a player displays it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct VideoTrack {
    /// Displayed width in pixels, after rotation.
    pub width: u32,
    /// Displayed height in pixels, after rotation.
    pub height: u32,
    /// Clockwise rotation from the track matrix: 0, 90, 180 or 270.
    /// (ffprobe shows 90 as `rotation=-90`, counting counterclockwise.)
    pub rotation: u16,
}

/// What the headers of an MP4 or QuickTime file say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VideoInfo {
    /// The movie's duration, as ffprobe reports a file's duration: the movie
    /// header's duration over its timescale (for a fragmented file, `mehd`'s,
    /// or the longest track with its fragments).
    pub duration: Duration,
    /// The first video track, if the file has one.
    pub video: Option<VideoTrack>,
    /// The file's size.
    pub size_bytes: u64,
    /// The `ftyp` major brand (`isom`, `qt  `), when there is an `ftyp`.
    pub brand: Option<String>,
    /// MP4 or QuickTime.
    pub container: Container,
    /// Whether the file is fragmented (has `mvex`).
    pub fragmented: bool,
}

/// An image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ImageFormat {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP.
    Webp,
    /// GIF.
    Gif,
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::Webp => "WebP",
            ImageFormat::Gif => "GIF",
        })
    }
}

/// What the header of an image says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ImageInfo {
    /// The format, from the magic bytes.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The file's size.
    pub size_bytes: u64,
}

/// A probed file: a video or an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probed {
    /// An MP4 or QuickTime file.
    Video(VideoInfo),
    /// A JPEG, PNG, WebP or GIF image.
    Image(ImageInfo),
}

impl Probed {
    /// Video or image.
    pub fn kind(&self) -> MediaKind {
        match self {
            Probed::Video(_) => MediaKind::Video,
            Probed::Image(_) => MediaKind::Image,
        }
    }

    /// The file's size.
    pub fn size_bytes(&self) -> u64 {
        match self {
            Probed::Video(v) => v.size_bytes,
            Probed::Image(i) => i.size_bytes,
        }
    }

    /// The MIME type of the content, as a `data:` URI or an upload names
    /// it.
    ///
    /// ```
    /// use kling_core::probe::{self, Probed};
    ///
    /// let gif = b"GIF89a\x90\x01\x2c\x01\0\0\0;";
    /// let probed = probe::probe_reader(std::io::Cursor::new(&gif[..]))?;
    /// assert_eq!(probed.content_type(), "image/gif");
    /// # Ok::<(), kling_core::probe::ProbeError>(())
    /// ```
    pub fn content_type(&self) -> &'static str {
        match self {
            Probed::Video(v) => match v.container {
                Container::Mp4 => "video/mp4",
                Container::QuickTime => "video/quicktime",
            },
            Probed::Image(i) => match i.format {
                ImageFormat::Jpeg => "image/jpeg",
                ImageFormat::Png => "image/png",
                ImageFormat::Webp => "image/webp",
                ImageFormat::Gif => "image/gif",
            },
        }
    }
}

/// Why a file could not be probed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    /// The path names a FIFO, device, socket or directory, which is never
    /// opened for reading (a FIFO would wait for a writer).
    #[error("{} is {what}; only regular files are accepted", .path.display())]
    NotRegularFile {
        /// The path as given.
        path: std::path::PathBuf,
        /// What it is: `a FIFO (named pipe)`, `a directory`, ….
        what: &'static str,
    },
    /// The file has no bytes.
    #[error("the file is empty")]
    Empty,
    /// The content is not a format we probe.
    #[error("{}", unrecognized(.found, *.kind))]
    Unrecognized {
        /// What the content looks like: "a WebM/Matroska video", "a PDF
        /// document", "data in no known format".
        found: &'static str,
        /// Whether that is a video or an image, when it is either.
        kind: Option<MediaKind>,
    },
    /// A box claims to extend past the end of the file: a truncated copy.
    #[error(
        "truncated: {what} ends at byte {box_end} but the file has {file_len} bytes \
         (an incomplete copy or download?)"
    )]
    Truncated {
        /// What overruns: `the mdat box`, `a box header`.
        what: String,
        /// Where it claims to end.
        box_end: u64,
        /// The file's size.
        file_len: u64,
    },
    /// The structure is broken.
    #[error("damaged: {0}")]
    Malformed(String),
    /// A header box is larger than we read.
    #[error("the {what} is {size} bytes, more than the {cap} bytes read for it")]
    TooLarge {
        /// Which box.
        what: String,
        /// Its size.
        size: u64,
        /// The most read.
        cap: u64,
    },
    /// Every box is whole but there is no `moov`.
    #[error("no moov box: the file has no index (a recording that was never finished?)")]
    NoMoov,
    /// An image whose header does not give its size.
    #[error("damaged image header: {0}")]
    ImageHeader(String),
}

fn unrecognized(found: &str, kind: Option<MediaKind>) -> String {
    match kind {
        Some(kind) => format!("{found}, a {kind} format that is not supported"),
        None => format!("{found}, not a video or image"),
    }
}

/// How much of an image is read to find its dimensions (JPEG's can follow
/// large EXIF blocks).
const IMAGE_HEAD_MAX_BYTES: u64 = 1 << 20;

/// Probes the file at `path`, following symbolic links.
///
/// Only a regular file is read: a FIFO, device, socket or directory is
/// refused with [`ProbeError::NotRegularFile`] before it is opened, and
/// the file is opened without waiting (a FIFO's open would wait for a
/// writer) and checked again once open, in case it was replaced between.
pub fn probe_file(path: &Path) -> Result<Probed, ProbeError> {
    crate::counters::count(&format!("probe {}", path.display()));
    let not_regular = |file_type: std::fs::FileType| ProbeError::NotRegularFile {
        path: path.to_owned(),
        what: file_type_name(file_type),
    };
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(not_regular(metadata.file_type()));
    }
    let file = open_without_blocking(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(not_regular(metadata.file_type()));
    }
    probe_reader(file)
}

/// Opens `path` for reading in a way that returns at once whatever it is.
fn open_without_blocking(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Reads of a regular file ignore O_NONBLOCK.
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// What a file that is not a regular one is, for messages.
fn file_type_name(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Probes a file or buffer; it is read from the start and sought through,
/// never read whole.
pub fn probe_reader<R: Read + Seek>(mut reader: R) -> Result<Probed, ProbeError> {
    let len = reader.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Err(ProbeError::Empty);
    }
    let mut head = [0u8; 32];
    let head_len = usize::try_from(len.min(32)).unwrap_or(32);
    let head = head.get_mut(..head_len).unwrap_or_default();
    reader.seek(SeekFrom::Start(0))?;
    reader.read_exact(head)?;
    match sniff::sniff(head) {
        sniff::Sniffed::IsoMedia => mp4::probe(&mut reader, len).map(Probed::Video),
        sniff::Sniffed::Image(format) => probe_image(reader, format, len).map(Probed::Image),
        sniff::Sniffed::Other { found, kind } => Err(ProbeError::Unrecognized { found, kind }),
    }
}

fn probe_image<R: Read + Seek>(
    mut reader: R,
    format: ImageFormat,
    len: u64,
) -> Result<ImageInfo, ProbeError> {
    reader.seek(SeekFrom::Start(0))?;
    let mut head = Vec::new();
    reader.take(IMAGE_HEAD_MAX_BYTES).read_to_end(&mut head)?;
    let size = imagesize::blob_size(&head).map_err(|e| ProbeError::ImageHeader(e.to_string()))?;
    let dimension = |n: usize| {
        u32::try_from(n).map_err(|_| ProbeError::ImageHeader(format!("impossible dimension {n}")))
    };
    Ok(ImageInfo {
        format,
        width: dimension(size.width)?,
        height: dimension(size.height)?,
        size_bytes: len,
    })
}
