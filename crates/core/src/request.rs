//! The four tasks as typed requests, and their serialized form.
//!
//! Requests are built with `new` and chained setters; every field is public
//! to read. A request that breaks a rule can be built, and
//! [`Request::validate`] reports every broken rule at once, before anything
//! is sent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::media::{Media, MediaKind};
use crate::rules::{Violation, Violations};

/// Which Kling Omni model runs the task.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Model {
    /// Kling O1, offered for every task.
    #[default]
    O1,
    /// Kling O3.
    O3,
}

/// Generation quality. Providers default to [`Mode::Pro`], and so do we.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Mode {
    /// Standard: cheaper, lower quality.
    Std,
    /// Professional.
    #[default]
    Pro,
}

/// The width:height of a generated video.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AspectRatio {
    /// 16:9, the providers' default.
    #[default]
    #[serde(rename = "16:9")]
    Landscape,
    /// 9:16.
    #[serde(rename = "9:16")]
    Portrait,
    /// 1:1.
    #[serde(rename = "1:1")]
    Square,
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Task {
    /// Edit a video from an instruction; the output keeps the input's length.
    Edit,
    /// Make a new shot guided by a reference video (camera, motion).
    Refer,
    /// Animate a first frame, optionally towards a last frame.
    Animate,
    /// Compose a clip from reference images and elements.
    Compose,
}

/// Implements `Display` and `FromStr` from one table of names, so the
/// spelling a user types, the one we print and the serde name agree.
macro_rules! names {
    ($type:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $type {
            /// Every value, in order.
            pub const ALL: &'static [$type] = &[$($type::$variant),+];

            /// The name used on the command line and in request files.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($type::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $type::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        given: s.to_owned(),
                        allowed: $type::ALL.iter().map(|value| value.as_str()).collect(),
                    })
            }
        }
    };
}

names!(Model, "model", { O1 => "o1", O3 => "o3" });
names!(Mode, "mode", { Std => "std", Pro => "pro" });
names!(AspectRatio, "aspect ratio", { Landscape => "16:9", Portrait => "9:16", Square => "1:1" });
names!(Task, "task", { Edit => "edit", Refer => "refer", Animate => "animate", Compose => "compose" });

/// A name that is not one of the allowed values.
///
/// ```
/// use kling_core::Model;
///
/// let err = "o2".parse::<Model>().unwrap_err();
/// assert_eq!(err.to_string(), "unknown model \"o2\"; expected one of: o1, o3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}; expected one of: {}", allowed.join(", "))]
pub struct UnknownName {
    what: &'static str,
    given: String,
    allowed: Vec<&'static str>,
}

/// A character or object seen from several angles, referenced in a prompt
/// as `@Element1`.
///
/// ```
/// use kling_core::{Element, Media};
///
/// let dog = Element::new(Media::url("https://example.com/dog-front.png"))
///     .reference(Media::url("https://example.com/dog-side.png"));
/// assert_eq!(dog.reference_images.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Element {
    /// The main, frontal view.
    pub frontal_image: Media,
    /// Further views from other angles: 1 to 4.
    pub reference_images: Vec<Media>,
}

impl Element {
    /// An element with its frontal image and, so far, no other views.
    pub fn new(frontal_image: impl Into<Media>) -> Self {
        Element {
            frontal_image: frontal_image.into(),
            reference_images: Vec::new(),
        }
    }

    /// Adds a view from another angle.
    #[must_use]
    pub fn reference(mut self, image: impl Into<Media>) -> Self {
        self.reference_images.push(image.into());
        self
    }
}

/// Setters shared by the request types, generated so each is written once.
macro_rules! setter {
    (prompt) => {
        /// Replaces the instruction.
        #[must_use]
        pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
            self.prompt = prompt.into();
            self
        }
    };
    (images) => {
        /// Adds a reference image, `@Image1` for the first one added.
        #[must_use]
        pub fn image(mut self, image: impl Into<Media>) -> Self {
            self.images.push(image.into());
            self
        }
    };
    (elements) => {
        /// Adds an element, `@Element1` for the first one added.
        #[must_use]
        pub fn element(mut self, element: Element) -> Self {
            self.elements.push(element);
            self
        }
    };
    (keep_audio) => {
        /// Whether to keep the input video's audio (default `false`).
        #[must_use]
        pub fn keep_audio(mut self, keep_audio: bool) -> Self {
            self.keep_audio = keep_audio;
            self
        }
    };
    (duration) => {
        /// The output length in whole seconds (default 5).
        #[must_use]
        pub fn duration(mut self, seconds: u32) -> Self {
            self.duration = seconds;
            self
        }
    };
    (aspect_ratio) => {
        /// The output's aspect ratio (default 16:9).
        #[must_use]
        pub fn aspect_ratio(mut self, aspect_ratio: AspectRatio) -> Self {
            self.aspect_ratio = aspect_ratio;
            self
        }
    };
    (model) => {
        /// The model (default [`Model::O1`]).
        #[must_use]
        pub fn model(mut self, model: Model) -> Self {
            self.model = model;
            self
        }
    };
    (mode) => {
        /// The quality mode (default [`Mode::Pro`]).
        #[must_use]
        pub fn mode(mut self, mode: Mode) -> Self {
            self.mode = mode;
            self
        }
    };
    ($($field:ident),+) => { $(setter!($field);)+ };
}

/// The output length when none is given, sent explicitly.
pub const DEFAULT_DURATION_SECS: u32 = 5;

/// Edit a video from an instruction: "remove the car", "make it snow".
///
/// The output has the input's length, and providers bill the input's
/// duration rounded to the nearest second.
///
/// ```
/// use kling_core::{EditRequest, Element, Media, Model};
///
/// let request = EditRequest::new(
///     Media::url("https://example.com/street.mp4"),
///     "Replace the statue in @Video1 with @Element1",
/// )
/// .element(
///     Element::new(Media::url("https://example.com/dog.png"))
///         .reference(Media::url("https://example.com/dog-side.png")),
/// )
/// .keep_audio(true)
/// .model(Model::O3);
///
/// assert!(kling_core::Request::from(request).validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EditRequest {
    /// The video to edit (`@Video1`).
    pub video: Media,
    /// The instruction.
    pub prompt: String,
    /// Reference images (`@Image1`…).
    pub images: Vec<Media>,
    /// Elements (`@Element1`…).
    pub elements: Vec<Element>,
    /// Keep the input's audio track.
    pub keep_audio: bool,
    /// The model.
    pub model: Model,
    /// The quality mode.
    pub mode: Mode,
}

impl EditRequest {
    /// An edit of `video` following `prompt`, with every option at its default.
    pub fn new(video: impl Into<Media>, prompt: impl Into<String>) -> Self {
        EditRequest {
            video: video.into(),
            prompt: prompt.into(),
            images: Vec::new(),
            elements: Vec::new(),
            keep_audio: false,
            model: Model::default(),
            mode: Mode::default(),
        }
    }

    setter!(prompt, images, elements, keep_audio, model, mode);
}

/// Make a new shot guided by a reference video: its camera work and motion.
///
/// ```
/// use kling_core::{AspectRatio, Media, ReferRequest, Request};
///
/// let request = ReferRequest::new(
///     Media::url("https://example.com/drone-shot.mp4"),
///     "Follow the camera path of @Video1 over a snowy forest",
/// )
/// .duration(10)
/// .aspect_ratio(AspectRatio::Portrait);
///
/// assert!(Request::from(request).validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReferRequest {
    /// The reference video (`@Video1`).
    pub video: Media,
    /// The instruction.
    pub prompt: String,
    /// Reference images (`@Image1`…).
    pub images: Vec<Media>,
    /// Elements (`@Element1`…).
    pub elements: Vec<Element>,
    /// Keep the reference video's audio track.
    pub keep_audio: bool,
    /// Output length in whole seconds.
    pub duration: u32,
    /// Output aspect ratio.
    pub aspect_ratio: AspectRatio,
    /// The model.
    pub model: Model,
    /// The quality mode.
    pub mode: Mode,
}

impl ReferRequest {
    /// A new shot guided by `video`, with every option at its default.
    pub fn new(video: impl Into<Media>, prompt: impl Into<String>) -> Self {
        ReferRequest {
            video: video.into(),
            prompt: prompt.into(),
            images: Vec::new(),
            elements: Vec::new(),
            keep_audio: false,
            duration: DEFAULT_DURATION_SECS,
            aspect_ratio: AspectRatio::default(),
            model: Model::default(),
            mode: Mode::default(),
        }
    }

    setter!(
        prompt,
        images,
        elements,
        keep_audio,
        duration,
        aspect_ratio,
        model,
        mode
    );
}

/// Animate a first frame, optionally ending on a last frame.
///
/// The first frame is `@Image1` in the prompt and the last `@Image2`.
///
/// ```
/// use kling_core::{AnimateRequest, Media, Request};
///
/// let request = AnimateRequest::new(
///     Media::url("https://example.com/bud.png"),
///     "The flower opens in the morning sun",
/// )
/// .last(Media::url("https://example.com/bloom.png"))
/// .duration(7);
///
/// assert!(Request::from(request).validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnimateRequest {
    /// The first frame.
    pub first: Media,
    /// The last frame, if any.
    pub last: Option<Media>,
    /// The instruction.
    pub prompt: String,
    /// Output length in whole seconds; 5 or 10 without a last frame.
    pub duration: u32,
    /// The model.
    pub model: Model,
    /// The quality mode.
    pub mode: Mode,
}

impl AnimateRequest {
    /// An animation starting on `first`, with every option at its default.
    pub fn new(first: impl Into<Media>, prompt: impl Into<String>) -> Self {
        AnimateRequest {
            first: first.into(),
            last: None,
            prompt: prompt.into(),
            duration: DEFAULT_DURATION_SECS,
            model: Model::default(),
            mode: Mode::default(),
        }
    }

    /// Sets the frame the animation ends on.
    #[must_use]
    pub fn last(mut self, last: impl Into<Media>) -> Self {
        self.last = Some(last.into());
        self
    }

    setter!(prompt, duration, model, mode);
}

/// Compose a clip from reference images and elements.
///
/// ```
/// use kling_core::{ComposeRequest, Element, Media, Request};
///
/// let request = ComposeRequest::new("@Element1 walks through the market of @Image1")
///     .image(Media::url("https://example.com/market.jpg"))
///     .element(
///         Element::new(Media::url("https://example.com/hero.png"))
///             .reference(Media::url("https://example.com/hero-back.png")),
///     );
///
/// assert!(Request::from(request).validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComposeRequest {
    /// Reference images (`@Image1`…).
    pub images: Vec<Media>,
    /// Elements (`@Element1`…).
    pub elements: Vec<Element>,
    /// The instruction.
    pub prompt: String,
    /// Output length in whole seconds.
    pub duration: u32,
    /// Output aspect ratio.
    pub aspect_ratio: AspectRatio,
    /// The model.
    pub model: Model,
    /// The quality mode.
    pub mode: Mode,
}

impl ComposeRequest {
    /// A composition following `prompt`; add images and elements to it.
    pub fn new(prompt: impl Into<String>) -> Self {
        ComposeRequest {
            images: Vec::new(),
            elements: Vec::new(),
            prompt: prompt.into(),
            duration: DEFAULT_DURATION_SECS,
            aspect_ratio: AspectRatio::default(),
            model: Model::default(),
            mode: Mode::default(),
        }
    }

    setter!(
        prompt,
        images,
        elements,
        duration,
        aspect_ratio,
        model,
        mode
    );
}

/// One media input of a request, as [`Request::media`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaField<'a> {
    /// Where it sits in the request: `video`, `images[1]`, `last`.
    pub field: String,
    /// Whether it must be a video or an image.
    pub kind: MediaKind,
    /// The input.
    pub media: &'a Media,
}

/// A request's media inputs as the strings a provider's body carries (URLs,
/// `data:` URIs), in the request's shape; see [`Request::wire_media`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireMedia {
    /// The video (edit, refer).
    pub video: Option<String>,
    /// The images; for animate, the first and last frames.
    pub images: Vec<String>,
    /// The elements.
    pub elements: Vec<WireElement>,
}

/// An element's images as a provider's body carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireElement {
    /// The main view.
    pub frontal_image: String,
    /// Other angles.
    pub reference_images: Vec<String>,
}

/// Any of the four tasks.
///
/// Its serialized form is [`RequestSpec`]: a flat object tagged by `task`,
/// with every default written out.
///
/// ```
/// use kling_core::{EditRequest, Media, Request, Task};
///
/// let request: Request = serde_json::from_str(
///     r#"{"task": "edit", "video": "https://example.com/in.mp4", "prompt": "Make it snow"}"#,
/// )
/// .unwrap();
/// assert_eq!(request.task(), Task::Edit);
/// assert_eq!(
///     request,
///     Request::from(EditRequest::new(Media::url("https://example.com/in.mp4"), "Make it snow"))
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RequestSpec", try_from = "RequestSpec")]
#[non_exhaustive]
pub enum Request {
    /// See [`EditRequest`].
    Edit(EditRequest),
    /// See [`ReferRequest`].
    Refer(ReferRequest),
    /// See [`AnimateRequest`].
    Animate(AnimateRequest),
    /// See [`ComposeRequest`].
    Compose(ComposeRequest),
}

macro_rules! impl_from_request {
    ($($variant:ident($type:ident)),+) => {
        $(impl From<$type> for Request {
            fn from(request: $type) -> Self {
                Request::$variant(request)
            }
        })+
    };
}

impl_from_request!(
    Edit(EditRequest),
    Refer(ReferRequest),
    Animate(AnimateRequest),
    Compose(ComposeRequest)
);

impl Request {
    /// Which task this is.
    pub fn task(&self) -> Task {
        match self {
            Request::Edit(_) => Task::Edit,
            Request::Refer(_) => Task::Refer,
            Request::Animate(_) => Task::Animate,
            Request::Compose(_) => Task::Compose,
        }
    }

    /// The instruction, as written.
    pub fn prompt(&self) -> &str {
        match self {
            Request::Edit(r) => &r.prompt,
            Request::Refer(r) => &r.prompt,
            Request::Animate(r) => &r.prompt,
            Request::Compose(r) => &r.prompt,
        }
    }

    /// The model.
    pub fn model(&self) -> Model {
        match self {
            Request::Edit(r) => r.model,
            Request::Refer(r) => r.model,
            Request::Animate(r) => r.model,
            Request::Compose(r) => r.model,
        }
    }

    /// The quality mode.
    pub fn mode(&self) -> Mode {
        match self {
            Request::Edit(r) => r.mode,
            Request::Refer(r) => r.mode,
            Request::Animate(r) => r.mode,
            Request::Compose(r) => r.mode,
        }
    }

    /// The input video, for the tasks that take one.
    pub fn video(&self) -> Option<&Media> {
        match self {
            Request::Edit(r) => Some(&r.video),
            Request::Refer(r) => Some(&r.video),
            Request::Animate(_) | Request::Compose(_) => None,
        }
    }

    /// The images the prompt calls `@Image1`, `@Image2`…: the reference
    /// images, or for [`Request::Animate`] the first and last frames.
    pub fn images(&self) -> Vec<&Media> {
        match self {
            Request::Edit(r) => r.images.iter().collect(),
            Request::Refer(r) => r.images.iter().collect(),
            Request::Animate(r) => std::iter::once(&r.first).chain(r.last.as_ref()).collect(),
            Request::Compose(r) => r.images.iter().collect(),
        }
    }

    /// The elements.
    pub fn elements(&self) -> &[Element] {
        match self {
            Request::Edit(r) => &r.elements,
            Request::Refer(r) => &r.elements,
            Request::Animate(_) => &[],
            Request::Compose(r) => &r.elements,
        }
    }

    /// Whether to keep the input's audio, for the tasks with an input video.
    pub fn keep_audio(&self) -> Option<bool> {
        match self {
            Request::Edit(r) => Some(r.keep_audio),
            Request::Refer(r) => Some(r.keep_audio),
            Request::Animate(_) | Request::Compose(_) => None,
        }
    }

    /// The output length in seconds, for the tasks that set one (an edit
    /// keeps its input's length).
    pub fn duration(&self) -> Option<u32> {
        match self {
            Request::Edit(_) => None,
            Request::Refer(r) => Some(r.duration),
            Request::Animate(r) => Some(r.duration),
            Request::Compose(r) => Some(r.duration),
        }
    }

    /// The output aspect ratio, for the tasks that set one.
    pub fn aspect_ratio(&self) -> Option<AspectRatio> {
        match self {
            Request::Refer(r) => Some(r.aspect_ratio),
            Request::Compose(r) => Some(r.aspect_ratio),
            Request::Edit(_) | Request::Animate(_) => None,
        }
    }

    /// Every media input turned into the string a provider's body carries
    /// by `resolve(field, media)`, with the fields of [`Request::media`]:
    /// adapters give URLs as they are and refuse, upload or inline the
    /// rest. Stops at the first error.
    ///
    /// ```
    /// use kling_core::{AnimateRequest, Media, Request};
    ///
    /// let request = Request::from(
    ///     AnimateRequest::new(Media::url("https://example.com/a.png"), "Bloom")
    ///         .last(Media::file("b.png")),
    /// );
    /// let wire = request.wire_media(|field, media| match media {
    ///     Media::Url(url) => Ok(url.clone()),
    ///     _ => Err(format!("{field} is local")),
    /// });
    /// assert_eq!(wire.unwrap_err(), "last is local");
    /// ```
    ///
    /// # Errors
    ///
    /// The first error `resolve` returns.
    pub fn wire_media<E>(
        &self,
        mut resolve: impl FnMut(&str, &Media) -> Result<String, E>,
    ) -> Result<WireMedia, E> {
        let mut wire = WireMedia::default();
        for input in self.media() {
            let value = resolve(&input.field, input.media)?;
            // Request::media lists each element's frontal image first.
            if input.field.starts_with("elements[") {
                if input.field.contains(".reference_images[") {
                    if let Some(element) = wire.elements.last_mut() {
                        element.reference_images.push(value);
                    }
                } else {
                    wire.elements.push(WireElement {
                        frontal_image: value,
                        reference_images: Vec::new(),
                    });
                }
            } else if input.kind == MediaKind::Video {
                wire.video = Some(value);
            } else {
                wire.images.push(value);
            }
        }
        Ok(wire)
    }

    /// Every media input with the field that holds it (`video`,
    /// `images[1]`, `elements[0].reference_images[2]`, `first`, `last`) and
    /// whether it must be a video or an image.
    pub fn media(&self) -> Vec<MediaField<'_>> {
        fn input(field: String, kind: MediaKind, media: &Media) -> MediaField<'_> {
            MediaField { field, kind, media }
        }
        let mut all = Vec::new();
        if let Request::Animate(r) = self {
            all.push(input("first".to_owned(), MediaKind::Image, &r.first));
            if let Some(last) = &r.last {
                all.push(input("last".to_owned(), MediaKind::Image, last));
            }
        } else {
            if let Some(video) = self.video() {
                all.push(input("video".to_owned(), MediaKind::Video, video));
            }
            for (i, image) in self.images().into_iter().enumerate() {
                all.push(input(format!("images[{i}]"), MediaKind::Image, image));
            }
            for (i, element) in self.elements().iter().enumerate() {
                all.push(input(
                    format!("elements[{i}].frontal_image"),
                    MediaKind::Image,
                    &element.frontal_image,
                ));
                for (j, image) in element.reference_images.iter().enumerate() {
                    all.push(input(
                        format!("elements[{i}].reference_images[{j}]"),
                        MediaKind::Image,
                        image,
                    ));
                }
            }
        }
        all
    }

    /// Replaces every media input, in the order [`Request::media`] lists
    /// them: how local files become uploaded URLs.
    ///
    /// ```
    /// use kling_core::{EditRequest, Media, Request};
    ///
    /// let request = Request::from(EditRequest::new(Media::file("in.mp4"), "go"));
    /// let uploaded = request.map_media(|_, media| match media {
    ///     Media::File(_) => Media::url("https://bucket.example/in.mp4"),
    ///     other => other,
    /// });
    /// assert_eq!(uploaded.video(), Some(&Media::url("https://bucket.example/in.mp4")));
    /// ```
    #[must_use]
    pub fn map_media(self, mut f: impl FnMut(MediaKind, Media) -> Media) -> Request {
        fn images(list: Vec<Media>, f: &mut impl FnMut(MediaKind, Media) -> Media) -> Vec<Media> {
            list.into_iter().map(|m| f(MediaKind::Image, m)).collect()
        }
        fn elements(
            list: Vec<Element>,
            f: &mut impl FnMut(MediaKind, Media) -> Media,
        ) -> Vec<Element> {
            list.into_iter()
                .map(|e| Element {
                    frontal_image: f(MediaKind::Image, e.frontal_image),
                    reference_images: images(e.reference_images, f),
                })
                .collect()
        }
        match self {
            Request::Edit(mut r) => {
                r.video = f(MediaKind::Video, r.video);
                r.images = images(r.images, &mut f);
                r.elements = elements(r.elements, &mut f);
                Request::Edit(r)
            }
            Request::Refer(mut r) => {
                r.video = f(MediaKind::Video, r.video);
                r.images = images(r.images, &mut f);
                r.elements = elements(r.elements, &mut f);
                Request::Refer(r)
            }
            Request::Animate(mut r) => {
                r.first = f(MediaKind::Image, r.first);
                r.last = r.last.map(|m| f(MediaKind::Image, m));
                Request::Animate(r)
            }
            Request::Compose(mut r) => {
                r.images = images(r.images, &mut f);
                r.elements = elements(r.elements, &mut f);
                Request::Compose(r)
            }
        }
    }

    /// Checks every rule that needs no network, and reports all that are
    /// broken at once as [`Error::InvalidRequest`].
    ///
    /// ```
    /// use kling_core::rules::Violation;
    /// use kling_core::{AnimateRequest, Media, Request};
    ///
    /// let request = Request::from(
    ///     AnimateRequest::new(Media::url("https://example.com/a.png"), "@Image2 fades in")
    ///         .duration(7),
    /// );
    /// let err = request.validate().unwrap_err();
    /// let violations: Vec<_> = err.violations().iter().map(Violation::rule).collect();
    /// assert_eq!(violations, ["prompt_reference", "duration_choice"]);
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        crate::counters::count("validate");
        Violations::into_result(crate::rules::check(self, crate::rules::MediaLimits::COMMON).0)
    }
}

/// The flat, serialized form of a [`Request`]: what request files and the
/// job journal hold.
///
/// Every field but `task` may be left out. [`Animate`](Task::Animate) takes
/// its first and last frames as `images`. Converting to a [`Request`]
/// reports a field the task does not take (`aspect_ratio` on an edit), a
/// missing video or first frame, and more than two frames.
///
/// ```
/// use kling_core::rules::Violation;
/// use kling_core::{Request, RequestSpec};
///
/// let spec: RequestSpec = serde_json::from_str(
///     r#"{"task": "edit", "video": "in.mp4", "prompt": "Make it snow", "aspect_ratio": "9:16"}"#,
/// )
/// .unwrap();
/// let err = Request::try_from(spec).unwrap_err();
/// assert_eq!(err.violations()[0].rule(), "field_not_allowed");
/// assert_eq!(
///     err.to_string(),
///     "invalid request, nothing was sent: aspect_ratio: not taken by the edit task \
///      (9:16 given; an edit keeps its input's framing and length)"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RequestSpec {
    /// The task.
    pub task: Task,
    /// The instruction.
    #[serde(default)]
    pub prompt: String,
    /// The input video (edit, refer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Media>,
    /// Reference images; for animate, the first and last frames.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Media>,
    /// Elements (edit, refer, compose).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<Element>,
    /// Keep the input's audio (edit, refer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_audio: Option<bool>,
    /// Output length in seconds (refer, animate, compose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    /// Output aspect ratio (refer, compose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<AspectRatio>,
    /// The model.
    #[serde(default)]
    pub model: Model,
    /// The quality mode.
    #[serde(default)]
    pub mode: Mode,
}

impl RequestSpec {
    /// An empty spec for `task`, to fill in field by field.
    pub fn new(task: Task) -> Self {
        RequestSpec {
            task,
            prompt: String::new(),
            video: None,
            images: Vec::new(),
            elements: Vec::new(),
            keep_audio: None,
            duration: None,
            aspect_ratio: None,
            model: Model::default(),
            mode: Mode::default(),
        }
    }
}

impl From<Request> for RequestSpec {
    fn from(request: Request) -> Self {
        let mut spec = RequestSpec::new(request.task());
        spec.model = request.model();
        spec.mode = request.mode();
        spec.keep_audio = request.keep_audio();
        spec.duration = request.duration();
        spec.aspect_ratio = request.aspect_ratio();
        match request {
            Request::Edit(r) => {
                spec.prompt = r.prompt;
                spec.video = Some(r.video);
                spec.images = r.images;
                spec.elements = r.elements;
            }
            Request::Refer(r) => {
                spec.prompt = r.prompt;
                spec.video = Some(r.video);
                spec.images = r.images;
                spec.elements = r.elements;
            }
            Request::Animate(r) => {
                spec.prompt = r.prompt;
                spec.images = std::iter::once(r.first).chain(r.last).collect();
            }
            Request::Compose(r) => {
                spec.prompt = r.prompt;
                spec.images = r.images;
                spec.elements = r.elements;
            }
        }
        spec
    }
}

impl TryFrom<RequestSpec> for Request {
    type Error = Error;

    fn try_from(spec: RequestSpec) -> Result<Self, Error> {
        let task = spec.task;
        let mut violations = Vec::new();
        let mut refuse = |field: &'static str, given: Option<String>| {
            if let Some(given) = given {
                violations.push(Violation::FieldNotAllowed { task, field, given });
            }
        };
        let takes_video = matches!(task, Task::Edit | Task::Refer);
        if !takes_video {
            refuse("video", spec.video.as_ref().map(ToString::to_string));
            refuse("keep_audio", spec.keep_audio.map(|v| v.to_string()));
        }
        if task == Task::Animate {
            refuse(
                "elements",
                (!spec.elements.is_empty()).then(|| format!("{} elements", spec.elements.len())),
            );
        }
        if matches!(task, Task::Edit | Task::Animate) {
            refuse("aspect_ratio", spec.aspect_ratio.map(|v| v.to_string()));
        }
        if task == Task::Edit {
            refuse("duration", spec.duration.map(|v| format!("{v} s")));
        }

        let duration = spec.duration.unwrap_or(DEFAULT_DURATION_SECS);
        let request = match task {
            Task::Edit | Task::Refer => {
                let Some(video) = spec.video else {
                    violations.push(Violation::MissingField {
                        task,
                        field: "video",
                    });
                    return Err(Error::InvalidRequest(Violations::from(violations)));
                };
                if task == Task::Edit {
                    let mut r = EditRequest::new(video, spec.prompt);
                    r.images = spec.images;
                    r.elements = spec.elements;
                    r.keep_audio = spec.keep_audio.unwrap_or(false);
                    r.model = spec.model;
                    r.mode = spec.mode;
                    Request::Edit(r)
                } else {
                    let mut r = ReferRequest::new(video, spec.prompt);
                    r.images = spec.images;
                    r.elements = spec.elements;
                    r.keep_audio = spec.keep_audio.unwrap_or(false);
                    r.duration = duration;
                    r.aspect_ratio = spec.aspect_ratio.unwrap_or_default();
                    r.model = spec.model;
                    r.mode = spec.mode;
                    Request::Refer(r)
                }
            }
            Task::Animate => {
                let count = spec.images.len();
                if count > crate::rules::limits::MAX_FRAMES {
                    violations.push(Violation::TooManyFrames {
                        count,
                        max: crate::rules::limits::MAX_FRAMES,
                    });
                }
                let mut frames = spec.images.into_iter();
                let Some(first) = frames.next() else {
                    violations.push(Violation::MissingField {
                        task,
                        field: "images",
                    });
                    return Err(Error::InvalidRequest(Violations::from(violations)));
                };
                let mut r = AnimateRequest::new(first, spec.prompt);
                r.last = frames.next();
                r.duration = duration;
                r.model = spec.model;
                r.mode = spec.mode;
                Request::Animate(r)
            }
            Task::Compose => {
                let mut r = ComposeRequest::new(spec.prompt);
                r.images = spec.images;
                r.elements = spec.elements;
                r.duration = duration;
                r.aspect_ratio = spec.aspect_ratio.unwrap_or_default();
                r.model = spec.model;
                r.mode = spec.mode;
                Request::Compose(r)
            }
        };
        Violations::into_result(violations).map(|()| request)
    }
}
