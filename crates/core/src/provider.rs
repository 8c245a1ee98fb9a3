//! The [`Provider`] trait every adapter implements, and the
//! [`Capabilities`] it declares.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::checked::Checked;
use crate::error::Error;
use crate::job::{JobHandle, JobStatus};
use crate::media::Media;
use crate::money::{Charge, Usd};
use crate::probe::ImageFormat;
use crate::request::{Mode, Model, Request, Task};
use crate::rules::{Violation, limits};

/// An optional part of a request that a provider may or may not accept for
/// a given task and model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// Reference images.
    Images,
    /// Elements.
    Elements,
    /// Keeping the input video's audio.
    KeepAudio,
    /// A last frame to animate towards.
    LastFrame,
}

impl Feature {
    /// The request field this feature corresponds to.
    pub fn field(self) -> &'static str {
        match self {
            Feature::Images => "images",
            Feature::Elements => "elements",
            Feature::KeepAudio => "keep_audio",
            Feature::LastFrame => "last",
        }
    }

    /// The features `request` uses: fields given with a value other than
    /// the one every provider assumes when the field is absent.
    pub fn used_by(request: &Request) -> Vec<Feature> {
        let mut used = Vec::new();
        if !request.images().is_empty() && request.task() != Task::Animate {
            used.push(Feature::Images);
        }
        if !request.elements().is_empty() {
            used.push(Feature::Elements);
        }
        if request.keep_audio() == Some(true) {
            used.push(Feature::KeepAudio);
        }
        if let Request::Animate(animate) = request
            && animate.last.is_some()
        {
            used.push(Feature::LastFrame);
        }
        used
    }
}

impl fmt::Display for Feature {
    /// What the feature is, with its field: `a last frame (last)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Feature::Images => "reference images",
            Feature::Elements => "elements",
            Feature::KeepAudio => "keeping the audio",
            Feature::LastFrame => "a last frame",
        };
        write!(f, "{what} ({})", self.field())
    }
}

/// One task on one model, as a provider offers it.
///
/// Built in `const` context so adapters can declare their catalogue as data:
///
/// ```
/// use kling_core::provider::{Feature, Offering};
/// use kling_core::{Model, Task};
///
/// const EDIT: Offering = Offering::new(Task::Edit, Model::O1, "example/kling-o1-edit")
///     .features(&[Feature::Images, Feature::Elements, Feature::KeepAudio]);
/// assert!(EDIT.offers(Feature::KeepAudio));
/// assert!(!EDIT.offers(Feature::LastFrame));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offering {
    /// The task.
    pub task: Task,
    /// The model.
    pub model: Model,
    /// The provider's name for the model.
    pub wire_model: &'static str,
    /// The optional features accepted.
    pub features: &'static [Feature],
    /// Output lengths accepted, when the provider is stricter than the
    /// common 3–10 s rule.
    pub durations: Option<&'static [u32]>,
    /// The modes a request may choose. A provider without a mode field runs
    /// Kling's default, pro, and offers only that.
    pub modes: &'static [Mode],
    /// What it costs in `std` mode.
    pub price_std: Price,
    /// What it costs in `pro` mode.
    pub price_pro: Price,
}

/// How a provider prices one task on one model, as published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Price {
    /// Per second of output (for an edit, of input, rounded to the nearest
    /// second).
    PerSecond(Usd),
    /// Per request, whatever the length.
    PerRequest(Usd),
    /// Not published.
    Unknown,
}

impl Price {
    /// The cost of `seconds` of video, when the price is known.
    ///
    /// ```
    /// use kling_core::Usd;
    /// use kling_core::provider::Price;
    ///
    /// let price = Price::PerSecond(Usd::from_micros(143_000));
    /// assert_eq!(price.for_seconds(5), Some(Usd::from_micros(715_000)));
    /// assert_eq!(Price::Unknown.for_seconds(5), None);
    /// ```
    pub fn for_seconds(self, seconds: u32) -> Option<Usd> {
        match self {
            Price::PerSecond(rate) => Some(rate.times(u64::from(seconds))),
            Price::PerRequest(price) => Some(price),
            Price::Unknown => None,
        }
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Price::PerSecond(rate) => write!(f, "{rate}/s"),
            Price::PerRequest(price) => write!(f, "{price}/request"),
            Price::Unknown => f.write_str("unknown"),
        }
    }
}

impl Offering {
    /// `task` on `model`, called `wire_model` by the provider, with no
    /// optional features.
    pub const fn new(task: Task, model: Model, wire_model: &'static str) -> Self {
        Offering {
            task,
            model,
            wire_model,
            features: &[],
            durations: None,
            modes: &[Mode::Std, Mode::Pro],
            price_std: Price::Unknown,
            price_pro: Price::Unknown,
        }
    }

    /// Sets the published prices in `std` and `pro` mode.
    #[must_use]
    pub const fn prices(mut self, std: Price, pro: Price) -> Self {
        self.price_std = std;
        self.price_pro = pro;
        self
    }

    /// The price in `mode`.
    pub fn price(&self, mode: Mode) -> Price {
        match mode {
            Mode::Std => self.price_std,
            Mode::Pro => self.price_pro,
        }
    }

    /// Sets the optional features accepted.
    #[must_use]
    pub const fn features(mut self, features: &'static [Feature]) -> Self {
        self.features = features;
        self
    }

    /// Restricts the modes a request may choose to `modes`.
    #[must_use]
    pub const fn modes(mut self, modes: &'static [Mode]) -> Self {
        self.modes = modes;
        self
    }

    /// Restricts output lengths to `durations` seconds.
    #[must_use]
    pub const fn durations(mut self, durations: &'static [u32]) -> Self {
        self.durations = Some(durations);
        self
    }

    /// Whether `feature` is accepted.
    pub fn offers(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }
}

/// What a provider offers: its tasks and models, and its operations.
///
/// ```
/// use kling_core::provider::{Capabilities, Feature, Offering};
/// use kling_core::{AnimateRequest, Media, Model, Request, Task};
///
/// const CATALOGUE: &[Offering] = &[
///     Offering::new(Task::Animate, Model::O1, "example/i2v").durations(&[5, 10]),
/// ];
/// let caps = Capabilities::new("example", CATALOGUE);
///
/// let request = Request::from(
///     AnimateRequest::new(Media::url("https://example.com/a.png"), "Bloom")
///         .last(Media::url("https://example.com/b.png")),
/// );
/// let err = caps.check(&request).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "example does not offer a last frame (last) for animate on o1; nothing was sent"
/// );
/// ```
// Each flag is one independent operation a provider offers or not, read
// as data by the CLI and xtask: not a state machine in disguise.
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The provider's name, as used in job handles and on the command line.
    pub provider: &'static str,
    /// Every task and model offered.
    pub offerings: &'static [Offering],
    /// Whether a running job can be cancelled.
    pub cancel: bool,
    /// Whether local files and bytes can be sent as they are (inline);
    /// otherwise they need an uploader that turns them into URLs.
    pub local_files: bool,
    /// The local image formats accepted.
    pub image_formats: &'static [ImageFormat],
    /// The longest input video accepted (the shortest is 3 s everywhere).
    pub video_max_duration: Duration,
    /// The most reference images an element may have (the fewest is 1).
    pub element_references_max: usize,
    /// The output lengths allowed when animating a single frame.
    pub single_frame_durations: &'static [u32],
    /// Whether a create whose answer was lost can be looked for among the
    /// provider's jobs ([`Provider::find_lost`]).
    pub lookup: bool,
    /// Whether the provider pushes news of a job while it runs (an event
    /// stream, [`Provider::push`]).
    pub push: bool,
    /// Whether the provider calls a URL given with the create when a job
    /// ends ([`Checked::with_callback_url`]).
    pub callbacks: bool,
    /// Whether local files go up to the provider's own storage before the
    /// create, with no uploader to set up ([`Provider::storage`]).
    pub storage: bool,
}

impl Capabilities {
    /// A provider named `provider` offering `offerings`, without cancel.
    pub const fn new(provider: &'static str, offerings: &'static [Offering]) -> Self {
        Capabilities {
            provider,
            offerings,
            cancel: false,
            local_files: false,
            image_formats: limits::IMAGE_FORMATS,
            video_max_duration: limits::VIDEO_MAX_DURATION,
            element_references_max: *limits::ELEMENT_REFERENCE_IMAGES.end(),
            single_frame_durations: limits::SINGLE_FRAME_DURATIONS,
            lookup: false,
            push: false,
            callbacks: false,
            storage: false,
        }
    }

    /// Declares that local files go up to the provider's own storage
    /// before the create ([`Provider::storage`]).
    ///
    /// ```
    /// use kling_core::provider::Capabilities;
    ///
    /// const CAPS: Capabilities = Capabilities::new("example", &[]).with_storage();
    /// assert!(CAPS.storage && !CAPS.local_files);
    /// ```
    #[must_use]
    pub const fn with_storage(mut self) -> Self {
        self.storage = true;
        self
    }

    /// Whether local files reach the provider without an uploader: inline
    /// in the create, or through its own storage.
    ///
    /// ```
    /// use kling_core::provider::Capabilities;
    ///
    /// assert!(Capabilities::new("inline", &[]).with_local_files().takes_local_files());
    /// assert!(Capabilities::new("stored", &[]).with_storage().takes_local_files());
    /// assert!(!Capabilities::new("urls", &[]).takes_local_files());
    /// ```
    pub const fn takes_local_files(&self) -> bool {
        self.local_files || self.storage
    }

    /// Declares that the provider calls back the URL a create gives
    /// ([`Checked::callback_url`]) when the job ends.
    ///
    /// ```
    /// use kling_core::provider::Capabilities;
    ///
    /// const CAPS: Capabilities = Capabilities::new("example", &[]).with_callbacks();
    /// assert!(CAPS.callbacks);
    /// assert!(!Capabilities::new("other", &[]).callbacks);
    /// ```
    #[must_use]
    pub const fn with_callbacks(mut self) -> Self {
        self.callbacks = true;
        self
    }

    /// Declares that the provider pushes news of its jobs
    /// ([`Provider::push`]).
    ///
    /// ```
    /// use kling_core::provider::Capabilities;
    ///
    /// const CAPS: Capabilities = Capabilities::new("example", &[]).with_push();
    /// assert!(CAPS.push);
    /// ```
    #[must_use]
    pub const fn with_push(mut self) -> Self {
        self.push = true;
        self
    }

    /// Declares that a lost create can be looked for
    /// ([`Provider::find_lost`]).
    ///
    /// ```
    /// use kling_core::provider::Capabilities;
    ///
    /// const CAPS: Capabilities = Capabilities::new("example", &[]).with_lookup();
    /// assert!(CAPS.lookup);
    /// assert!(!Capabilities::new("other", &[]).lookup);
    /// ```
    #[must_use]
    pub const fn with_lookup(mut self) -> Self {
        self.lookup = true;
        self
    }

    /// Declares that local files are sent inline, without an uploader.
    #[must_use]
    pub const fn with_local_files(mut self) -> Self {
        self.local_files = true;
        self
    }

    /// Declares the longest input video accepted, when it differs from
    /// [`limits::VIDEO_MAX_DURATION`] (a provider that publishes a margin
    /// over 10 s for containers whose length rounds up).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kling_core::provider::Capabilities;
    ///
    /// const CAPS: Capabilities =
    ///     Capabilities::new("example", &[]).with_video_max_duration(Duration::from_millis(10_050));
    /// assert_eq!(CAPS.video_max_duration, Duration::from_millis(10_050));
    /// ```
    #[must_use]
    pub const fn with_video_max_duration(mut self, max: Duration) -> Self {
        self.video_max_duration = max;
        self
    }

    /// Declares the most reference images an element may have, when fewer
    /// than [`limits::ELEMENT_REFERENCE_IMAGES`] allows.
    ///
    /// ```
    /// use kling_core::provider::Capabilities;
    ///
    /// const CAPS: Capabilities = Capabilities::new("example", &[]).with_max_element_references(3);
    /// assert_eq!(CAPS.element_references_max, 3);
    /// ```
    #[must_use]
    pub const fn with_max_element_references(mut self, max: usize) -> Self {
        self.element_references_max = max;
        self
    }

    /// Declares the output lengths allowed when animating a single frame,
    /// when they differ from [`limits::SINGLE_FRAME_DURATIONS`] (Kling's 5
    /// or 10 s, as ShortAPI publishes them).
    ///
    /// ```
    /// use kling_core::provider::Capabilities;
    ///
    /// const CAPS: Capabilities =
    ///     Capabilities::new("example", &[]).with_single_frame_durations(&[3, 4, 5, 6, 7, 8, 9, 10]);
    /// assert!(CAPS.single_frame_durations.contains(&7));
    /// ```
    #[must_use]
    pub const fn with_single_frame_durations(mut self, durations: &'static [u32]) -> Self {
        self.single_frame_durations = durations;
        self
    }

    /// The rules this provider's requests are checked with.
    pub(crate) fn media_limits(&self) -> crate::rules::MediaLimits {
        crate::rules::MediaLimits {
            image_formats: self.image_formats,
            video_max_duration: self.video_max_duration,
            element_references_max: self.element_references_max,
            single_frame_durations: self.single_frame_durations,
        }
    }

    /// Declares the local image formats accepted, when they differ from
    /// [`limits::IMAGE_FORMATS`].
    #[must_use]
    pub const fn with_image_formats(mut self, formats: &'static [ImageFormat]) -> Self {
        self.image_formats = formats;
        self
    }

    /// Runs every local rule on `request` with this provider's image
    /// formats, probing each local file once, then [`Capabilities::check`]:
    /// everything that can be known before sending. The [`Checked`]
    /// request it returns is the only one adapters send.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] with every broken rule, or
    /// [`Error::Unsupported`].
    pub fn validate(&self, request: &Request) -> Result<Checked, Error> {
        Checked::new(self, request)
    }

    /// The offering that runs `checked`, when it was checked for this
    /// provider: what an adapter's `prepare` starts with.
    ///
    /// ```
    /// use kling_core::provider::{Capabilities, Feature, Offering};
    /// use kling_core::{ComposeRequest, Media, Model, Request, Task};
    ///
    /// const CATALOGUE: &[Offering] = &[Offering::new(Task::Compose, Model::O1, "c").features(&[Feature::Images])];
    /// const OURS: Capabilities = Capabilities::new("ours", CATALOGUE);
    /// const THEIRS: Capabilities = Capabilities::new("theirs", CATALOGUE);
    ///
    /// let request = Request::from(ComposeRequest::new("Bloom").image(Media::url("https://example.com/a.png")));
    /// let checked = OURS.validate(&request)?;
    /// assert_eq!(OURS.accept(&checked)?.wire_model, "c");
    /// assert!(THEIRS.accept(&checked).is_err());
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for a request checked for another provider.
    pub fn accept<'c>(&self, checked: &'c Checked) -> Result<&'c Offering, Error> {
        if checked.provider() == self.provider {
            Ok(checked.offering())
        } else {
            Err(Error::Unsupported {
                provider: self.provider.to_owned(),
                task: Some(checked.request().task()),
                model: Some(checked.request().model()),
                feature: format!(
                    "a request checked for {}: validate it for this provider",
                    checked.provider()
                ),
            })
        }
    }

    /// Declares that jobs can be cancelled.
    #[must_use]
    pub const fn with_cancel(mut self) -> Self {
        self.cancel = true;
        self
    }

    /// The offering for `task` on `model`, if any.
    pub fn offering(&self, task: Task, model: Model) -> Option<&Offering> {
        self.offerings
            .iter()
            .find(|o| o.task == task && o.model == model)
    }

    /// Checks that this provider offers everything `request` uses, and
    /// returns the offering that will run it.
    ///
    /// The provider's own duration restriction is reported as a rule
    /// violation ([`Violation::DurationNotOffered`]); a missing task, model
    /// or feature as [`Error::Unsupported`].
    pub fn check(&self, request: &Request) -> Result<&Offering, Error> {
        let (task, model) = (request.task(), request.model());
        let unsupported = |feature: String| Error::Unsupported {
            provider: self.provider.to_owned(),
            task: Some(task),
            model: Some(model),
            feature,
        };
        let Some(offering) = self.offering(task, model) else {
            let models: Vec<String> = self
                .offerings
                .iter()
                .filter(|o| o.task == task)
                .map(|o| o.model.to_string())
                .collect();
            let (task, feature) = if models.is_empty() {
                (None, format!("the {task} task"))
            } else {
                (
                    Some(task),
                    format!("model {model} (it offers {})", models.join(", ")),
                )
            };
            return Err(Error::Unsupported {
                provider: self.provider.to_owned(),
                task,
                model: None,
                feature,
            });
        };
        if let Some(feature) = Feature::used_by(request)
            .into_iter()
            .find(|f| !offering.offers(*f))
        {
            return Err(unsupported(feature.to_string()));
        }
        if !offering.modes.contains(&request.mode()) {
            let offered: Vec<String> = offering.modes.iter().map(ToString::to_string).collect();
            return Err(unsupported(format!(
                "{} mode (mode): it runs {} only",
                request.mode(),
                offered.join(" or ")
            )));
        }
        if let (Some(allowed), Some(value)) = (offering.durations, request.duration())
            && !allowed.contains(&value)
        {
            return Err(Violation::DurationNotOffered {
                value,
                allowed: allowed.to_vec(),
                context: format!("on {} for {task}", self.provider),
            }
            .into());
        }
        Ok(offering)
    }
}

/// The URL of `media`, for a provider that fetches its inputs by URL; a
/// local file or bytes are refused before anything is sent, with what to
/// do instead.
///
/// ```
/// use kling_core::Media;
/// use kling_core::provider::require_url;
///
/// let url = require_url("example", "video", &Media::url("https://example.com/a.mp4"))?;
/// assert_eq!(url, "https://example.com/a.mp4");
///
/// let err = require_url("example", "video", &Media::file("clip.mp4")).unwrap_err();
/// assert!(err.to_string().contains("plug an Uploader"));
/// # Ok::<(), kling_core::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Unsupported`] for a local file or bytes.
pub fn require_url(provider: &str, field: &str, media: &Media) -> Result<String, Error> {
    match media {
        Media::Url(url) => Ok(url.clone()),
        _ => Err(Error::unsupported(
            provider,
            format!(
                "local files ({field}: {media}): it fetches inputs by URL. Give a URL, plug an \
                 Uploader that turns files into URLs (Client::with_uploader; the sandbox has \
                 one), or use a provider that takes local files inline"
            ),
        )),
    }
}

/// Reads `raw`, an answer of `provider`'s, as its documented shape `T`;
/// anything else is an [`Error::Protocol`] saying it is not `what`, with
/// the body kept. The one way adapters read what providers answer.
///
/// ```
/// use kling_core::provider::read_answer;
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Created { id: String }
///
/// let created: Created = read_answer("example", "a create answer", &serde_json::json!({"id": "7"}))?;
/// assert_eq!(created.id, "7");
///
/// let err = read_answer::<Created>("example", "a create answer", &serde_json::json!([1])).unwrap_err();
/// assert!(err.to_string().starts_with("unexpected answer from example: not a create answer"));
/// # Ok::<(), kling_core::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Protocol`] when `raw` is not a `T`.
pub fn read_answer<T: serde::de::DeserializeOwned>(
    provider: &str,
    what: &str,
    raw: &serde_json::Value,
) -> Result<T, Error> {
    T::deserialize(raw)
        .map_err(|e| Error::protocol(provider, format!("not {what}: {e}"), raw.to_string()))
}

/// The JSON Schema of what `T` serializes to, as adapters describe their
/// request bodies for `cargo xtask schemas` (draft 2020-12, the
/// serialization contract: a field skipped when empty is not required).
///
/// ```
/// #[derive(serde::Serialize, schemars::JsonSchema)]
/// struct Body {
///     prompt: String,
///     #[serde(skip_serializing_if = "Vec::is_empty")]
///     images: Vec<String>,
/// }
///
/// let schema = kling_core::provider::body_schema::<Body>();
/// assert_eq!(schema.get("required"), Some(&serde_json::json!(["prompt"])));
/// ```
pub fn body_schema<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
}

/// An HTTP call, described: what a dry run prints.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PreparedCall {
    /// The HTTP method.
    pub method: &'static str,
    /// The full URL.
    pub url: String,
    /// The JSON body.
    pub body: serde_json::Value,
    /// The provider's model name.
    pub model: String,
}

impl PreparedCall {
    /// A `method` call to `url` with `body`, for `model`.
    pub fn new(method: &'static str, url: String, body: serde_json::Value, model: &str) -> Self {
        PreparedCall {
            method,
            url,
            body,
            model: model.to_owned(),
        }
    }
}

/// What a provider pushed about a job while it was being waited for.
#[derive(Debug)]
#[non_exhaustive]
pub enum Pushed {
    /// The job ended: its final status, as pushed.
    Ended(JobStatus),
    /// The push channel dropped or went quiet: ask the status instead.
    Lost,
}

/// A wait for a provider's push about one job; see [`Provider::push`].
pub type PushFuture<'a> = Pin<Box<dyn Future<Output = Pushed> + Send + 'a>>;

/// A create whose answer was lost (a timeout, a dropped connection): what
/// [`Provider::find_lost`] needs to look for the job it may have made.
///
/// ```
/// use std::time::SystemTime;
/// use kling_core::provider::{Capabilities, Offering};
/// use kling_core::{EditRequest, LostCreate, Media, Model, Request, Task};
///
/// const CAPS: Capabilities = Capabilities::new("example", &[Offering::new(Task::Edit, Model::O1, "e")]);
/// let request = Request::from(EditRequest::new(Media::url("https://example.com/in.mp4"), "Snow"));
/// let sent = CAPS.validate(&request)?;
/// let adopted = vec!["4b1d".to_owned()];
/// let lost = LostCreate::new(&sent, SystemTime::now(), &adopted);
/// assert_eq!(lost.known, ["4b1d"]);
/// # Ok::<(), kling_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct LostCreate<'a> {
    /// The request exactly as it was sent: local media already replaced by
    /// the URLs an uploader gave, so that it prepares the same body.
    pub request: &'a Checked,
    /// When the create was about to leave.
    pub sent_at: SystemTime,
    /// Provider job ids the caller already has (other creates of the same
    /// request, found or answered): never returned.
    pub known: &'a [String],
}

impl<'a> LostCreate<'a> {
    /// The create of `request` that was about to leave at `sent_at`; the
    /// caller already has the jobs `known`.
    ///
    /// ```
    /// use std::time::UNIX_EPOCH;
    /// use kling_core::provider::{Capabilities, Feature, Offering};
    /// use kling_core::{ComposeRequest, LostCreate, Media, Model, Request, Task};
    ///
    /// const CAPS: Capabilities = Capabilities::new("example", &[Offering::new(Task::Compose, Model::O1, "c").features(&[Feature::Images])]);
    /// let request = Request::from(ComposeRequest::new("Bloom").image(Media::url("https://example.com/a.png")));
    /// let sent = CAPS.validate(&request)?;
    /// let lost = LostCreate::new(&sent, UNIX_EPOCH, &[]);
    /// assert!(lost.known.is_empty());
    /// assert_eq!(lost.sent_at, UNIX_EPOCH);
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    pub fn new(request: &'a Checked, sent_at: SystemTime, known: &'a [String]) -> Self {
        LostCreate {
            request,
            sent_at,
            known,
        }
    }
}

/// What [`Provider::find_lost`] found.
///
/// ```
/// use kling_core::{Found, JobHandle};
///
/// let found = Found::Job(JobHandle::new("oxen", "4b1d"));
/// assert!(matches!(found, Found::Job(ref job) if job.id == "4b1d"));
/// assert_ne!(Found::NotFound, Found::Unsupported);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// The job the create made, not one of those already known.
    Job(JobHandle),
    /// No job of the provider matches the request since it was sent (other
    /// than those already known).
    NotFound,
    /// The provider offers no way to look for it.
    Unsupported,
}

/// A hosting provider of Kling's models, driven through one interface.
///
/// Adapters implement it; the `kling` facade drives it (validate, submit,
/// wait, download). It is object-safe, so a program can pick a provider at
/// run time as a `Box<dyn Provider>`.
///
/// ```
/// use async_trait::async_trait;
/// use kling_core::provider::{Capabilities, Offering, PreparedCall, Provider};
/// use kling_core::{Checked, Error, JobHandle, JobState, JobStatus, Model, Task};
///
/// /// A provider that finishes every job at once.
/// #[derive(Debug)]
/// struct Instant;
///
/// const CAPS: Capabilities =
///     Capabilities::new("instant", &[Offering::new(Task::Edit, Model::O1, "edit")]);
///
/// #[async_trait]
/// impl Provider for Instant {
///     fn capabilities(&self) -> &Capabilities {
///         &CAPS
///     }
///     fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error> {
///         let offering = CAPS.accept(checked)?;
///         let body = serde_json::json!({ "prompt": checked.request().prompt() });
///         Ok(PreparedCall::new("POST", "https://instant.example/jobs".into(), body, offering.wire_model))
///     }
///     async fn submit(&self, checked: &Checked) -> Result<JobHandle, Error> {
///         self.prepare(checked)?;
///         Ok(JobHandle::new("instant", "1"))
///     }
///     async fn status(&self, _job: &JobHandle) -> Result<JobStatus, Error> {
///         let state = JobState::Succeeded { outputs: vec![] };
///         Ok(JobStatus::new(state, serde_json::Value::Null))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let provider: Box<dyn Provider> = Box::new(Instant);
/// assert_eq!(provider.name(), "instant");
///
/// // What it does not implement has a default: no charge reported, no
/// // lookup of a lost create.
/// use kling_core::{EditRequest, Found, LostCreate, Media, Request};
///
/// assert_eq!(provider.charge(&JobHandle::new("instant", "1")).await?, None);
/// let request = Request::from(EditRequest::new(Media::url("https://example.com/a.mp4"), "Snow"));
/// let checked = CAPS.validate(&request)?;
/// assert_eq!(provider.submit(&checked).await?.id, "1");
/// let lost = LostCreate::new(&checked, std::time::SystemTime::now(), &[]);
/// assert_eq!(provider.find_lost(&lost).await?, Found::Unsupported);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// What this provider offers.
    fn capabilities(&self) -> &Capabilities;

    /// The create call `submit` would send for `checked`, without sending
    /// it: what `--dry-run` shows. Adapters build their `submit` on it, so
    /// the two cannot differ, and refuse a request checked for another
    /// provider ([`Capabilities::accept`]).
    fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error>;

    /// The provider's name.
    fn name(&self) -> &'static str {
        self.capabilities().provider
    }

    /// Where this provider is reached, when it is reached over HTTP: a
    /// job is found again at the same address, so the ledger records it.
    fn base_url(&self) -> Option<&str> {
        None
    }

    /// Creates a job for a request that passed every local rule (only
    /// [`Capabilities::validate`] makes a [`Checked`] one). Implementations
    /// never retry a create that may have reached the provider.
    async fn submit(&self, checked: &Checked) -> Result<JobHandle, Error>;

    /// Asks where a job is. Safe to retry.
    async fn status(&self, job: &JobHandle) -> Result<JobStatus, Error>;

    /// Waits for the provider to push news that `job` ended (Oxen's
    /// server-sent events), for providers that push; `None` for those that
    /// do not. The future resolves when the job ends, or with
    /// [`Pushed::Lost`] when the channel drops or goes quiet; the caller
    /// keeps polling now and then, since a push can be missed.
    fn push<'a>(&'a self, job: &'a JobHandle) -> Option<PushFuture<'a>> {
        let _ = job;
        None
    }

    /// Cancels a job, where the provider allows it.
    async fn cancel(&self, job: &JobHandle) -> Result<(), Error> {
        Err(Error::unsupported(&job.provider, "cancelling jobs"))
    }

    /// What the provider says it charged for `job`, asked of it now, for
    /// providers that show charges apart from the status (Oxen's
    /// generation record); `None` when the provider has not charged it
    /// (yet) or does not say. Safe to retry.
    ///
    /// ShortAPI's charge comes with the create ([`JobHandle::charge`]) and
    /// AI/ML API's with the status ([`JobStatus::charge`]): their adapters
    /// keep this default.
    async fn charge(&self, job: &JobHandle) -> Result<Option<Charge>, Error> {
        let _ = job;
        Ok(None)
    }

    /// Looks among the provider's jobs for the one a create whose answer
    /// was lost may have made: the earliest job since `lost.sent_at` (less
    /// an allowance for clock skew) whose parameters are those the request
    /// prepares, and that is not in `lost.known`. Safe to retry; it never
    /// creates anything.
    ///
    /// [`Found::Unsupported`] for providers without such a lookup
    /// ([`Capabilities::lookup`] is false).
    async fn find_lost(&self, lost: &LostCreate<'_>) -> Result<Found, Error> {
        let _ = lost;
        Ok(Found::Unsupported)
    }

    /// The provider's own storage for local files, for providers that
    /// have one ([`Capabilities::storage`]): files go up through it before
    /// the create, as through an [`Uploader`] the caller sets.
    fn storage(&self) -> Option<Arc<dyn Uploader>> {
        None
    }

    /// How to tell the provider's signed calls back from anyone else's,
    /// for providers that sign them; `None` for those trusted on the
    /// callback URL's token alone.
    fn callback_verifier(&self) -> Option<Arc<dyn CallbackVerifier>> {
        None
    }
}

/// Makes a local file or bytes reachable by URL: S3, GCS, an Oxen
/// repository, a provider's own storage, the sandbox. Local inputs then
/// work on providers that only fetch URLs.
///
/// An upload creates no job: whatever goes wrong, nothing paid may exist,
/// so its errors never say the create may have been sent.
///
/// ```
/// use async_trait::async_trait;
/// use kling_core::provider::Uploader;
/// use kling_core::{Error, Media};
///
/// /// Hands out the URL the file will have once a job copies it there.
/// #[derive(Debug)]
/// struct Mirrored;
///
/// #[async_trait]
/// impl Uploader for Mirrored {
///     async fn upload(&self, media: &Media) -> Result<String, Error> {
///         match media {
///             Media::File(path) => Ok(format!("https://mirror.example/{}", path.display())),
///             other => Err(Error::unsupported("mirror", format!("{other}"))),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Uploader: Send + Sync + fmt::Debug {
    /// Uploads `media` (a file or bytes) and returns a URL the provider
    /// can fetch.
    async fn upload(&self, media: &Media) -> Result<String, Error>;
}

/// Checks that a call claiming to be a provider's is its, for providers
/// that sign their calls. A provider without one is trusted on the
/// callback URL's token alone (ShortAPI signs nothing).
///
/// ```
/// use async_trait::async_trait;
/// use http::HeaderMap;
/// use kling_core::provider::CallbackVerifier;
///
/// /// Takes calls whose `x-signature` is the body's length (a stand-in
/// /// for a real signature check).
/// struct Length;
///
/// #[async_trait]
/// impl CallbackVerifier for Length {
///     async fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
///         let signed = headers.get("x-signature").and_then(|v| v.to_str().ok());
///         (signed == Some(body.len().to_string().as_str()))
///             .then_some(())
///             .ok_or_else(|| "no valid x-signature".to_owned())
///     }
/// }
/// ```
#[async_trait]
pub trait CallbackVerifier: Send + Sync {
    /// `Ok` when `headers` and `body` carry the provider's valid
    /// signature; otherwise why not. It may fetch what it needs (a
    /// provider's published keys).
    ///
    /// # Errors
    ///
    /// The reason the call is refused (logged, never sent back).
    async fn verify(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<(), String>;
}

/// An adapter's wire-body schemas: each provider model and the JSON Schema
/// of the body sent for it (`kling_http::Descriptor::wire_schemas`).
pub type WireSchemas = fn() -> Vec<(&'static str, schemars::Schema)>;
