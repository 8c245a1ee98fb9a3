//! The rules every request must pass before anything is sent, and the
//! [`Violation`]s that report a broken one.
//!
//! Each limit is a constant in [`limits`] with the provider pages it comes
//! from. Each violation names the field, the value given and the limit, and
//! has a stable [`rule`](Violation::rule) name for scripts.

use std::fmt;

use crate::error::Error;
use crate::media::Media;
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
    /// Inline media with no bytes.
    EmptyMedia {
        /// The field holding it.
        field: String,
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
            Violation::EmptyMedia { .. } => "media_empty",
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
            | Violation::EmptyMedia { field } => field.clone(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.field())?;
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
            Violation::ElementReferenceCount { count, .. } => write!(
                f,
                "{count} images, allowed {} to {}",
                limits::ELEMENT_REFERENCE_IMAGES.start(),
                limits::ELEMENT_REFERENCE_IMAGES.end()
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
        }
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

/// Runs every rule on `request`, returning what is broken.
pub(crate) fn check(request: &Request) -> Vec<Violation> {
    let mut violations = Vec::new();
    check_prompt(request, &mut violations);
    check_inputs(request, &mut violations);
    check_duration(request, &mut violations);
    for (field, media) in request.media() {
        violations.extend(check_media(field, media));
    }
    violations
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

fn check_inputs(request: &Request, out: &mut Vec<Violation>) {
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
        if !limits::ELEMENT_REFERENCE_IMAGES.contains(&count) {
            out.push(Violation::ElementReferenceCount { element, count });
        }
    }
}

fn check_duration(request: &Request, out: &mut Vec<Violation>) {
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
        && !limits::SINGLE_FRAME_DURATIONS.contains(&value)
    {
        out.push(Violation::DurationNotOffered {
            value,
            allowed: limits::SINGLE_FRAME_DURATIONS.to_vec(),
            context: "when animating a single frame (add a last frame for other lengths)"
                .to_owned(),
        });
    }
}

/// Checks one media input that needs no file access.
fn check_media(field: String, media: &Media) -> Option<Violation> {
    match media {
        Media::Url(raw) => match url::Url::parse(raw) {
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
        },
        Media::Bytes { data, .. } if data.is_empty() => Some(Violation::EmptyMedia { field }),
        Media::Bytes { .. } | Media::File(_) => None,
    }
}
