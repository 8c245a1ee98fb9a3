//! The rules every request must pass before anything is sent, and the
//! [`Violation`]s that report a broken one.
//!
//! Each limit is a constant in [`limits`] with the provider pages it comes
//! from. Each violation names the field, the value given and the limit, and
//! has a stable [`rule`](Violation::rule) name for scripts.

use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use crate::checked::CheckedInput;
use crate::error::Error;
use crate::media::{Media, MediaKind};
use crate::probe::{self, ImageFormat, ProbeError, Probed};
use crate::prompt::{Prompt, RefKind, Reference};
use crate::request::{Request, Task};

/// The limits the rules enforce.
pub mod limits {
    use std::ops::RangeInclusive;

    /// Longest prompt, in characters (AI/ML API schemas; ShortAPI O3).
    pub const PROMPT_MAX_CHARS: usize = 2500;
    /// Images plus elements when the request has a video (ShortAPI O1/O3
    /// video-to-video, fal, Oxen O3).
    pub const MAX_INPUTS_WITH_VIDEO: usize = 4;
    /// Images plus elements without a video (ShortAPI O1 image-to-video,
    /// AI/ML API reference-to-video).
    pub const MAX_INPUTS_WITHOUT_VIDEO: usize = 7;
    /// Reference images of one element (AI/ML API schemas: min 1, max 4).
    pub const ELEMENT_REFERENCE_IMAGES: RangeInclusive<usize> = 1..=4;
    /// Output length in whole seconds (ShortAPI O1 image-to-video).
    pub const DURATION_SECS: RangeInclusive<u32> = 3..=10;
    /// Output lengths when animating a single frame (ShortAPI O1 image-to-video).
    pub const SINGLE_FRAME_DURATIONS: &[u32] = &[5, 10];
    /// A first and a last frame.
    pub const MAX_FRAMES: usize = 2;
    /// URL schemes a provider can fetch.
    pub const URL_SCHEMES: &[&str] = &["http", "https"];

    /// Shortest input video (ShortAPI O1 video-to-video, fal, AI/ML API).
    pub const VIDEO_MIN_DURATION: Duration = Duration::from_secs(3);
    /// Longest input video, as ffprobe reports the file's duration.
    pub const VIDEO_MAX_DURATION: Duration = Duration::from_secs(10);
    /// Input video width and height, each (ShortAPI O1 video-to-video, fal).
    pub const VIDEO_SIDE_PX: RangeInclusive<u32> = 720..=2160;
    /// Largest input video: 200 MB (ShortAPI O1 video-to-video, fal). Read
    /// as decimal megabytes, the stricter reading.
    pub const VIDEO_MAX_BYTES: u64 = 200_000_000;
    /// Smallest image width and height (fal; Kling's own docs).
    pub const IMAGE_MIN_SIDE_PX: u32 = 300;
    /// Largest image: 10 MB, decimal (fal; Kling's own docs).
    pub const IMAGE_MAX_BYTES: u64 = 10_000_000;
    /// Image width / height, as a fraction: 2/5 (0.4) to 5/2 (2.5).
    pub const IMAGE_ASPECT: (u32, u32) = (2, 5);
    /// Image formats every provider takes.
    pub const IMAGE_FORMATS: &[ImageFormat] =
        &[ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp];

    use std::time::Duration;

    use crate::probe::ImageFormat;
}

/// One broken rule.
///
/// ```
/// use kling_core::rules::Violation;
///
/// let violation = Violation::PromptTooLong { chars: 2501, max: 2500 };
/// assert_eq!(violation.rule(), "prompt_length");
/// assert_eq!(violation.field(), "prompt");
/// assert_eq!(violation.to_string(), "prompt: 2501 characters, the limit is 2500");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// The prompt is empty or only whitespace.
    PromptEmpty,
    /// The prompt is longer than the limit.
    PromptTooLong {
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// More images plus elements than the task takes.
    TooManyInputs {
        /// Images given.
        images: usize,
        /// Elements given.
        elements: usize,
        /// The limit on their sum.
        max: usize,
        /// Whether the request has a video (the limit is lower then).
        with_video: bool,
    },
    /// A composition with neither images nor elements.
    NoInputs,
    /// An element with too few or too many reference images.
    ElementReferenceCount {
        /// Which element, from 0.
        element: usize,
        /// Reference images given.
        count: usize,
        /// The most the provider takes.
        max: usize,
    },
    /// A duration outside the allowed range.
    DurationOutOfRange {
        /// Seconds given.
        value: u32,
        /// The shortest allowed.
        min: u32,
        /// The longest allowed.
        max: u32,
    },
    /// A duration that is in range but not one of the lengths offered here.
    DurationNotOffered {
        /// Seconds given.
        value: u32,
        /// The lengths offered.
        allowed: Vec<u32>,
        /// Where the restriction applies ("with a single frame",
        /// "on aimlapi for refer").
        context: String,
    },
    /// A field the task does not take.
    FieldNotAllowed {
        /// The task.
        task: Task,
        /// The field.
        field: &'static str,
        /// What was given.
        given: String,
    },
    /// A field the task requires is missing.
    MissingField {
        /// The task.
        task: Task,
        /// The field.
        field: &'static str,
    },
    /// More frames than a first and a last.
    TooManyFrames {
        /// Frames given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A prompt reference to an input the request does not have.
    UnknownReference {
        /// The reference as parsed.
        reference: Reference,
        /// Its position in the prompt, in characters from 0.
        position: usize,
        /// How many inputs of that kind the request has.
        available: usize,
    },
    /// A URL whose scheme a provider cannot fetch.
    UrlScheme {
        /// The field holding it.
        field: String,
        /// The scheme given.
        scheme: String,
    },
    /// A string that is not a URL.
    InvalidUrl {
        /// The field holding it.
        field: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A URL checked before sending that cannot be used: the server
    /// refused it (404, 403, 410…), serves a web page, or what it serves
    /// is not usable media.
    UrlUnusable {
        /// The field holding it.
        field: String,
        /// Why, naming the URL without its query.
        reason: String,
    },
    /// A URL that could not be checked before sending (no answer, a 5xx,
    /// an answer too slow): a refusal only when asked to be strict.
    UrlUnchecked {
        /// The field holding it.
        field: String,
        /// Why, naming the URL without its query.
        reason: String,
    },
    /// Media with no bytes.
    EmptyMedia {
        /// The field holding it.
        field: String,
    },
    /// A local file that cannot be read.
    FileUnreadable {
        /// The field holding it.
        field: String,
        /// Why.
        reason: String,
    },
    /// A file whose structure is broken.
    FileDamaged {
        /// The field holding it.
        field: String,
        /// What is broken.
        reason: String,
    },
    /// A file cut short: a box claims to extend past its end.
    FileTruncated {
        /// The field holding it.
        field: String,
        /// What the probe found.
        reason: String,
    },
    /// A file in a format the field does not take (a WebM, or a PNG
    /// renamed `.mp4`, given as the video).
    WrongFormat {
        /// The field holding it.
        field: String,
        /// What the field takes.
        expected: MediaKind,
        /// What the file is.
        found: String,
    },
    /// A video file without a video track (audio only).
    NoVideoTrack {
        /// The field holding it.
        field: String,
    },
    /// A video shorter or longer than allowed.
    VideoDuration {
        /// The field holding it.
        field: String,
        /// Its duration.
        duration: Duration,
        /// The longest the provider takes.
        max: Duration,
    },
    /// A video too small or too large in pixels.
    VideoResolution {
        /// The field holding it.
        field: String,
        /// Displayed width.
        width: u32,
        /// Displayed height.
        height: u32,
    },
    /// A file larger than allowed.
    FileTooLarge {
        /// The field holding it.
        field: String,
        /// Video or image.
        kind: MediaKind,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        max: u64,
    },
    /// An image smaller than allowed.
    ImageResolution {
        /// The field holding it.
        field: String,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// An image too wide or too tall for its other side.
    ImageAspect {
        /// The field holding it.
        field: String,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
}

impl Violation {
    /// A stable name for the rule, for scripts and JSON output.
    pub fn rule(&self) -> &'static str {
        match self {
            Violation::PromptEmpty => "prompt_empty",
            Violation::PromptTooLong { .. } => "prompt_length",
            Violation::TooManyInputs { .. } => "input_count",
            Violation::NoInputs => "input_missing",
            Violation::ElementReferenceCount { .. } => "element_references",
            Violation::DurationOutOfRange { .. } => "duration_range",
            Violation::DurationNotOffered { .. } => "duration_choice",
            Violation::FieldNotAllowed { .. } => "field_not_allowed",
            Violation::MissingField { .. } => "field_missing",
            Violation::TooManyFrames { .. } => "frame_count",
            Violation::UnknownReference { .. } => "prompt_reference",
            Violation::UrlScheme { .. } => "url_scheme",
            Violation::InvalidUrl { .. } => "url_invalid",
            Violation::UrlUnusable { .. } => "url_unusable",
            Violation::UrlUnchecked { .. } => "url_unchecked",
            Violation::EmptyMedia { .. } => "media_empty",
            Violation::FileUnreadable { .. } => "file_unreadable",
            Violation::FileDamaged { .. } => "file_damaged",
            Violation::FileTruncated { .. } => "file_truncated",
            Violation::WrongFormat {
                expected: MediaKind::Video,
                ..
            } => "video_container",
            Violation::WrongFormat {
                expected: MediaKind::Image,
                ..
            } => "image_format",
            Violation::NoVideoTrack { .. } => "video_track",
            Violation::VideoDuration { .. } => "video_duration",
            Violation::VideoResolution { .. } => "video_resolution",
            Violation::FileTooLarge {
                kind: MediaKind::Video,
                ..
            } => "video_size",
            Violation::FileTooLarge {
                kind: MediaKind::Image,
                ..
            } => "image_size",
            Violation::ImageResolution { .. } => "image_resolution",
            Violation::ImageAspect { .. } => "image_aspect",
        }
    }

    /// The field at fault, as written in request files
    /// (`elements[0].reference_images`).
    pub fn field(&self) -> String {
        match self {
            Violation::PromptEmpty
            | Violation::PromptTooLong { .. }
            | Violation::UnknownReference { .. } => "prompt".to_owned(),
            Violation::TooManyInputs { .. } | Violation::NoInputs => "images+elements".to_owned(),
            Violation::ElementReferenceCount { element, .. } => {
                format!("elements[{element}].reference_images")
            }
            Violation::DurationOutOfRange { .. } | Violation::DurationNotOffered { .. } => {
                "duration".to_owned()
            }
            Violation::FieldNotAllowed { field, .. } | Violation::MissingField { field, .. } => {
                (*field).to_owned()
            }
            Violation::TooManyFrames { .. } => "images".to_owned(),
            Violation::UrlScheme { field, .. }
            | Violation::InvalidUrl { field, .. }
            | Violation::UrlUnusable { field, .. }
            | Violation::UrlUnchecked { field, .. }
            | Violation::EmptyMedia { field }
            | Violation::FileUnreadable { field, .. }
            | Violation::FileDamaged { field, .. }
            | Violation::FileTruncated { field, .. }
            | Violation::WrongFormat { field, .. }
            | Violation::NoVideoTrack { field }
            | Violation::VideoDuration { field, .. }
            | Violation::VideoResolution { field, .. }
            | Violation::FileTooLarge { field, .. }
            | Violation::ImageResolution { field, .. }
            | Violation::ImageAspect { field, .. } => field.clone(),
        }
    }
}

impl Violation {
    /// What is wrong and what is allowed, without the field.
    pub fn message(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_message(&mut out);
        out
    }

    #[allow(clippy::too_many_lines)] // one arm per rule, read best together
    fn write_message(&self, f: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Violation::PromptEmpty => write!(
                f,
                "empty; write an instruction of 1 to {} characters",
                limits::PROMPT_MAX_CHARS
            ),
            Violation::PromptTooLong { chars, max } => {
                write!(f, "{chars} characters, the limit is {max}")
            }
            Violation::TooManyInputs {
                images,
                elements,
                max,
                with_video,
            } => write!(
                f,
                "{images} images and {elements} elements make {}, the limit {} a video is {max}",
                images + elements,
                if *with_video { "with" } else { "without" }
            ),
            Violation::NoInputs => f.write_str(
                "none given; compose needs at least 1 image or element (use --image or --element)",
            ),
            Violation::ElementReferenceCount { count, max, .. } => write!(
                f,
                "{count} images, allowed {} to {max}",
                limits::ELEMENT_REFERENCE_IMAGES.start(),
            ),
            Violation::DurationOutOfRange { value, min, max } => {
                write!(f, "{value} s, allowed {min} to {max} s in whole seconds")
            }
            Violation::DurationNotOffered {
                value,
                allowed,
                context,
            } => {
                let allowed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                write!(f, "{value} s, allowed {} s {context}", allowed.join(" or "))
            }
            Violation::FieldNotAllowed { task, given, .. } => {
                write!(f, "not taken by the {task} task ({given} given")?;
                if *task == Task::Edit {
                    f.write_str("; an edit keeps its input's framing and length")?;
                }
                f.write_str(")")
            }
            Violation::MissingField { task, .. } => write!(f, "required for the {task} task"),
            Violation::TooManyFrames { count, max } => write!(
                f,
                "{count} frames given, animate takes a first and an optional last frame ({max} at most)"
            ),
            Violation::UnknownReference {
                reference,
                position,
                available,
            } => {
                let noun = match reference.kind {
                    RefKind::Image => "image",
                    RefKind::Element => "element",
                    RefKind::Video => "video",
                };
                let plural = if *available == 1 { "" } else { "s" };
                if reference.index == u32::MAX {
                    // A number too large to read is read as u32::MAX.
                    return write!(
                        f,
                        "the @{}… reference at character {position} has a number too large to be an input; the request has {available} {noun}{plural}",
                        reference.kind
                    );
                }
                write!(
                    f,
                    "{reference} at character {position} refers to {noun} {}, but the request has {available} {noun}{plural}",
                    reference.index
                )
            }
            Violation::UrlScheme { scheme, .. } => write!(
                f,
                "URL scheme {scheme:?} is not allowed; use {} or a local file",
                limits::URL_SCHEMES.join(" or ")
            ),
            Violation::InvalidUrl { reason, .. } => write!(f, "not a valid URL ({reason})"),
            Violation::EmptyMedia { .. } => f.write_str("empty (0 bytes)"),
            Violation::FileUnreadable { reason, .. }
            | Violation::UrlUnusable { reason, .. }
            | Violation::UrlUnchecked { reason, .. }
            | Violation::FileDamaged { reason, .. }
            | Violation::FileTruncated { reason, .. } => f.write_str(reason),
            Violation::WrongFormat {
                expected, found, ..
            } => match expected {
                MediaKind::Video => write!(f, "{found}; a video must be an MP4 or MOV file"),
                MediaKind::Image => {
                    let allowed: Vec<String> = limits::IMAGE_FORMATS
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    write!(
                        f,
                        "{found}; an image must be {} (GIF too where a provider takes it)",
                        one_of(&allowed)
                    )
                }
            },
            Violation::NoVideoTrack { .. } => {
                f.write_str("has no video track (audio only?); a video track is required")
            }
            Violation::VideoDuration { duration, max, .. } => {
                let max = if max.subsec_millis() == 0 {
                    format!("{} s", max.as_secs())
                } else {
                    seconds(*max)
                };
                write!(
                    f,
                    "{} long, allowed {} to {max}",
                    seconds(*duration),
                    limits::VIDEO_MIN_DURATION.as_secs(),
                )
            }
            Violation::VideoResolution { width, height, .. } => write!(
                f,
                "{width}x{height} px, each side must be {} to {} px",
                limits::VIDEO_SIDE_PX.start(),
                limits::VIDEO_SIDE_PX.end()
            ),
            Violation::FileTooLarge { size, max, .. } => {
                write!(f, "{}, the limit is {}", megabytes(*size), megabytes(*max))
            }
            Violation::ImageResolution { width, height, .. } => write!(
                f,
                "{width}x{height} px, each side must be at least {} px",
                limits::IMAGE_MIN_SIDE_PX
            ),
            Violation::ImageAspect { width, height, .. } => write!(
                f,
                "{width}x{height} px is {:.2}:1, the aspect ratio must be 0.4 to 2.5",
                f64::from(*width) / f64::from((*height).max(1))
            ),
        }
    }
}

impl fmt::Display for Violation {
    /// `field: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field(), self.message())
    }
}

/// Every rule a request broke, in the order checked; never empty when
/// carried by an [`Error`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// `Ok` when there are none, [`Error::InvalidRequest`] otherwise.
    pub(crate) fn into_result(violations: Vec<Violation>) -> Result<(), Error> {
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidRequest(Violations(violations)))
        }
    }
}

impl From<Vec<Violation>> for Violations {
    fn from(violations: Vec<Violation>) -> Self {
        Violations(violations)
    }
}

impl std::ops::Deref for Violations {
    type Target = [Violation];

    fn deref(&self) -> &[Violation] {
        &self.0
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, violation) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{violation}")?;
        }
        Ok(())
    }
}

/// The rules that vary by provider: the image formats it takes, the
/// longest input video, the most reference images an element has, and the
/// lengths of a clip animated from a single frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MediaLimits {
    pub(crate) image_formats: &'static [ImageFormat],
    pub(crate) video_max_duration: Duration,
    pub(crate) element_references_max: usize,
    pub(crate) single_frame_durations: &'static [u32],
}

impl MediaLimits {
    /// What every provider takes.
    pub(crate) const COMMON: MediaLimits = MediaLimits {
        image_formats: limits::IMAGE_FORMATS,
        video_max_duration: limits::VIDEO_MAX_DURATION,
        element_references_max: *limits::ELEMENT_REFERENCE_IMAGES.end(),
        single_frame_durations: limits::SINGLE_FRAME_DURATIONS,
    };
}

/// Runs every rule on `request`, returning what is broken and what each
/// media input is, probed once, within the provider's `media` limits.
pub(crate) fn check(request: &Request, media: MediaLimits) -> (Vec<Violation>, Vec<CheckedInput>) {
    let mut violations = Vec::new();
    check_prompt(request, &mut violations);
    check_inputs(request, media.element_references_max, &mut violations);
    check_duration(request, media.single_frame_durations, &mut violations);
    let mut inputs = Vec::new();
    for input in request.media() {
        let (probed, broken) = check_media(input.field.clone(), input.kind, input.media, media);
        violations.extend(broken);
        inputs.push(CheckedInput {
            field: input.field,
            kind: input.kind,
            probed,
        });
    }
    (violations, inputs)
}

fn check_prompt(request: &Request, out: &mut Vec<Violation>) {
    let text = request.prompt();
    if text.trim().is_empty() {
        out.push(Violation::PromptEmpty);
        return;
    }
    let chars = text.chars().count();
    if chars > limits::PROMPT_MAX_CHARS {
        out.push(Violation::PromptTooLong {
            chars,
            max: limits::PROMPT_MAX_CHARS,
        });
    }
    for located in Prompt::parse(text).references() {
        let available = match located.reference.kind {
            RefKind::Video => usize::from(request.video().is_some()),
            RefKind::Image => request.images().len(),
            RefKind::Element => request.elements().len(),
        };
        let index = usize::try_from(located.reference.index).unwrap_or(usize::MAX);
        if index == 0 || index > available {
            out.push(Violation::UnknownReference {
                reference: located.reference,
                position: located.position,
                available,
            });
        }
    }
}

fn check_inputs(request: &Request, references_max: usize, out: &mut Vec<Violation>) {
    let elements = request.elements();
    if request.task() != Task::Animate {
        let images = request.images().len();
        let with_video = request.video().is_some();
        let max = if with_video {
            limits::MAX_INPUTS_WITH_VIDEO
        } else {
            limits::MAX_INPUTS_WITHOUT_VIDEO
        };
        if images + elements.len() > max {
            out.push(Violation::TooManyInputs {
                images,
                elements: elements.len(),
                max,
                with_video,
            });
        }
        if request.task() == Task::Compose && images + elements.len() == 0 {
            out.push(Violation::NoInputs);
        }
    }
    for (element, e) in elements.iter().enumerate() {
        let count = e.reference_images.len();
        if count < *limits::ELEMENT_REFERENCE_IMAGES.start() || count > references_max {
            out.push(Violation::ElementReferenceCount {
                element,
                count,
                max: references_max,
            });
        }
    }
}

fn check_duration(request: &Request, single_frame: &[u32], out: &mut Vec<Violation>) {
    let Some(value) = request.duration() else {
        return;
    };
    if !limits::DURATION_SECS.contains(&value) {
        out.push(Violation::DurationOutOfRange {
            value,
            min: *limits::DURATION_SECS.start(),
            max: *limits::DURATION_SECS.end(),
        });
        return;
    }
    if let Request::Animate(animate) = request
        && animate.last.is_none()
        && !single_frame.contains(&value)
    {
        out.push(Violation::DurationNotOffered {
            value,
            allowed: single_frame.to_vec(),
            context: "when animating a single frame (add a last frame for other lengths)"
                .to_owned(),
        });
    }
}

/// Checks one media input: a URL's form, or a local file's or bytes'
/// content, returning what probing found.
fn check_media(
    field: String,
    kind: MediaKind,
    media: &Media,
    limits: MediaLimits,
) -> (Option<Probed>, Vec<Violation>) {
    let probed = match media {
        Media::Url(raw) => return (None, check_url(field, raw).into_iter().collect()),
        Media::Bytes { data, .. } if data.is_empty() => {
            return (None, vec![Violation::EmptyMedia { field }]);
        }
        Media::Bytes { data, .. } => probe::probe_reader(Cursor::new(&data[..])),
        Media::File(path) => probe::probe_file(path),
    };
    let report = check_probed(&field, kind, probed, limits);
    (report.probed, report.violations)
}

/// A URL input's form: parsed, with a scheme providers fetch and a host.
pub(crate) fn check_url(field: String, raw: &str) -> Option<Violation> {
    match url::Url::parse(raw) {
        Err(e) => Some(Violation::InvalidUrl {
            field,
            reason: e.to_string(),
        }),
        Ok(url) if !limits::URL_SCHEMES.contains(&url.scheme()) => Some(Violation::UrlScheme {
            field,
            scheme: url.scheme().to_owned(),
        }),
        Ok(url) if url.host_str().is_none_or(str::is_empty) => Some(Violation::InvalidUrl {
            field,
            reason: "no host".to_owned(),
        }),
        Ok(_) => None,
    }
}

/// A local file checked against the rules for its kind.
#[derive(Debug)]
#[non_exhaustive]
pub struct FileReport {
    /// Video or image: what the file was expected to be, or else what its
    /// content is. `None` when neither is known.
    pub kind: Option<MediaKind>,
    /// What probing found, when the file could be probed.
    pub probed: Option<Probed>,
    /// Every broken rule; empty when the file passes.
    pub violations: Vec<Violation>,
}

impl FileReport {
    /// The report of media that could not be read at all, and why.
    ///
    /// ```
    /// use kling_core::rules::{FileReport, Violation};
    ///
    /// let report = FileReport::unread(None, Violation::UrlUnusable {
    ///     field: "https://cdn.example/a.mp4".into(),
    ///     reason: "https://cdn.example/a.mp4 answered HTTP 404".into(),
    /// });
    /// assert!(!report.is_ok());
    /// ```
    pub fn unread(kind: Option<MediaKind>, why: Violation) -> FileReport {
        FileReport {
            kind,
            probed: None,
            violations: vec![why],
        }
    }

    /// Whether the file passes every rule.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Probes the file at `path` and checks it against the rules for a video
/// or an image, without a request around it: what `kling validate` does.
///
/// `expected` says what the file must be; with `None` its extension
/// decides, and failing that its content. Violations name the path as
/// their field.
///
/// ```no_run
/// use kling_core::rules::check_file;
/// use std::path::Path;
///
/// let report = check_file(Path::new("clip.mp4"), None);
/// for violation in &report.violations {
///     eprintln!("{violation}"); // clip.mp4: 2.960 s long, allowed 3 to 10 s
/// }
/// ```
pub fn check_file(path: &Path, expected: Option<MediaKind>) -> FileReport {
    check_found(
        &path.display().to_string(),
        expected.or_else(|| MediaKind::from_extension(path)),
        probe::probe_file(path),
    )
}

/// Checks what probing found of the media named `field` (a path, a URL
/// without its query) against the rules for a video or an image: what
/// [`check_file`] does once the file is probed, for media probed
/// elsewhere (a URL's headers read over the network).
///
/// `expected` says what the media must be; with `None` its content
/// decides.
///
/// ```
/// use kling_core::probe::probe_file;
/// use kling_core::rules::check_found;
/// use std::path::Path;
///
/// let found = probe_file(Path::new("tests/fixtures/too_long.mp4"));
/// let report = check_found("https://cdn.example/too_long.mp4", None, found);
/// assert_eq!(report.violations[0].rule(), "video_duration");
/// ```
pub fn check_found(
    field: &str,
    expected: Option<MediaKind>,
    probed: Result<Probed, ProbeError>,
) -> FileReport {
    let expected = expected.or(match &probed {
        Ok(p) => Some(p.kind()),
        Err(ProbeError::Unrecognized { kind, .. }) => *kind,
        Err(_) => None,
    });
    if let Some(kind) = expected {
        return check_probed(field, kind, probed, MediaLimits::COMMON);
    }
    // Neither the name nor the content says video or image: the probe
    // failed before it could tell.
    let violations = match probed {
        Err(e) => vec![probe_violation(field.to_owned(), MediaKind::Video, e)],
        Ok(_) => Vec::new(),
    };
    FileReport {
        kind: None,
        probed: None,
        violations,
    }
}

/// Applies the rules for `kind` to what probing found.
pub(crate) fn check_probed(
    field: &str,
    kind: MediaKind,
    probed: Result<Probed, ProbeError>,
    media: MediaLimits,
) -> FileReport {
    let field = field.to_owned();
    let mut violations = Vec::new();
    let probed = match probed {
        Ok(probed) => probed,
        Err(e) => {
            return FileReport {
                kind: Some(kind),
                probed: None,
                violations: vec![probe_violation(field, kind, e)],
            };
        }
    };
    let (found, max_bytes) = match (&probed, kind) {
        (Probed::Video(video), MediaKind::Video) => {
            check_video(&field, video, media.video_max_duration, &mut violations);
            (None, limits::VIDEO_MAX_BYTES)
        }
        (Probed::Image(image), MediaKind::Image) => {
            if !media.image_formats.contains(&image.format) {
                violations.push(Violation::WrongFormat {
                    field: field.clone(),
                    expected: kind,
                    found: format!("a {} image", image.format),
                });
            }
            check_image(&field, image.width, image.height, &mut violations);
            (None, limits::IMAGE_MAX_BYTES)
        }
        (Probed::Image(image), MediaKind::Video) => (Some(format!("a {} image", image.format)), 0),
        (Probed::Video(_), MediaKind::Image) => (Some("an MP4/MOV video".to_owned()), 0),
    };
    if let Some(found) = found {
        violations.push(Violation::WrongFormat {
            field,
            expected: kind,
            found,
        });
    } else if probed.size_bytes() > max_bytes {
        violations.push(Violation::FileTooLarge {
            field,
            kind,
            size: probed.size_bytes(),
            max: max_bytes,
        });
    }
    FileReport {
        kind: Some(kind),
        probed: Some(probed),
        violations,
    }
}

fn check_video(field: &str, video: &probe::VideoInfo, max: Duration, out: &mut Vec<Violation>) {
    let Some(track) = video.video else {
        out.push(Violation::NoVideoTrack {
            field: field.to_owned(),
        });
        return;
    };
    if video.duration < limits::VIDEO_MIN_DURATION || video.duration > max {
        out.push(Violation::VideoDuration {
            field: field.to_owned(),
            duration: video.duration,
            max,
        });
    }
    if !limits::VIDEO_SIDE_PX.contains(&track.width)
        || !limits::VIDEO_SIDE_PX.contains(&track.height)
    {
        out.push(Violation::VideoResolution {
            field: field.to_owned(),
            width: track.width,
            height: track.height,
        });
    }
}

fn check_image(field: &str, width: u32, height: u32, out: &mut Vec<Violation>) {
    if width < limits::IMAGE_MIN_SIDE_PX || height < limits::IMAGE_MIN_SIDE_PX {
        out.push(Violation::ImageResolution {
            field: field.to_owned(),
            width,
            height,
        });
    }
    // 2/5 <= width/height <= 5/2, in integers.
    let (low, high) = limits::IMAGE_ASPECT;
    let (w, h) = (u64::from(width), u64::from(height));
    if w * u64::from(high) < h * u64::from(low) || w * u64::from(low) > h * u64::from(high) {
        out.push(Violation::ImageAspect {
            field: field.to_owned(),
            width,
            height,
        });
    }
}

/// The violation for a file that could not be probed.
fn probe_violation(field: String, expected: MediaKind, error: ProbeError) -> Violation {
    match error {
        ProbeError::Io(e) => Violation::FileUnreadable {
            field,
            reason: format!("cannot read the file: {e}"),
        },
        e @ ProbeError::NotRegularFile { .. } => Violation::FileUnreadable {
            field,
            reason: e.to_string(),
        },
        ProbeError::Empty => Violation::EmptyMedia { field },
        ProbeError::Unrecognized { found, .. } => Violation::WrongFormat {
            field,
            expected,
            found: found.to_owned(),
        },
        e @ ProbeError::Truncated { .. } => Violation::FileTruncated {
            field,
            reason: e.to_string(),
        },
        e => Violation::FileDamaged {
            field,
            reason: e.to_string(),
        },
    }
}

/// `A, B or C`.
fn one_of(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `2.960 s`: seconds to the millisecond.
fn seconds(d: Duration) -> String {
    format!("{}.{:03} s", d.as_secs(), d.subsec_millis())
}

/// `200 MB`, `200.000001 MB`: exact decimal megabytes, as the limits are
/// given, so a file just over a limit never shows as equal to it.
fn megabytes(bytes: u64) -> String {
    let fraction = format!("{:06}", bytes % 1_000_000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{} MB", bytes / 1_000_000)
    } else {
        format!("{}.{fraction} MB", bytes / 1_000_000)
    }
}
