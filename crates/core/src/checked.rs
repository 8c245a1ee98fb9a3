//! The checked request: what validation produces, and the only request
//! adapters prepare and send.

use crate::error::Error;
use crate::media::{Media, MediaKind};
use crate::probe::Probed;
use crate::provider::{Capabilities, Offering};
use crate::request::{Request, Task};
use crate::rules::{self, Violations};

/// A request that passed every local rule and one provider's
/// capabilities, with what probing its local files found.
///
/// Only [`Capabilities::validate`] builds one, and adapters prepare and
/// submit nothing else: "nothing is sent before every rule passed" holds
/// by construction. Each local file is probed once, here; the facts are
/// kept for the estimate and the uploads.
///
/// ```
/// use kling_core::provider::{Capabilities, Offering};
/// use kling_core::{EditRequest, Media, Model, Request, Task};
///
/// const CAPS: Capabilities =
///     Capabilities::new("example", &[Offering::new(Task::Edit, Model::O1, "example/edit")]);
///
/// let request = Request::from(EditRequest::new(Media::url("https://example.com/in.mp4"), "Snow"));
/// let checked = CAPS.validate(&request)?;
/// assert_eq!(checked.provider(), "example");
/// assert_eq!(checked.offering().wire_model, "example/edit");
/// // A URL's length is not known locally: the seconds billed are not either.
/// assert_eq!(checked.billed_seconds(), None);
/// # Ok::<(), kling_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Checked {
    request: Request,
    offering: Offering,
    provider: &'static str,
    media: rules::MediaLimits,
    inputs: Vec<CheckedInput>,
    callback_url: Option<CallbackUrl>,
}

/// A callback URL, whose query holds its credential: `Debug` shows it
/// without.
#[derive(Clone)]
struct CallbackUrl(String);

impl std::fmt::Debug for CallbackUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.split(['?', '#']).next().unwrap_or_default();
        write!(f, "{shown:?}")
    }
}

/// What was learnt of a URL input before sending, by reading its headers
/// over the network; see [`Checked::with_url_facts`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum UrlFact {
    /// What its headers say: the rules apply to it as to a local file's.
    Probed(Probed),
    /// Why it cannot be used: the server refused it, serves a web page, or
    /// serves something that is not usable media. Says which URL, without
    /// its query.
    Unusable(String),
    /// Why it could not be checked (no answer, a 5xx, too slow), when
    /// that is to refuse it too. Says which URL, without its query.
    Unchecked(String),
}

/// What validation learnt of one media input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckedInput {
    /// The field that holds it (`video`, `images[0]`, …), as in
    /// [`Request::media`].
    pub field: String,
    /// Whether it must be a video or an image.
    pub kind: MediaKind,
    /// What its header says, for a local file or bytes, or for a URL read
    /// before sending ([`Checked::with_url_facts`]); otherwise `None`.
    pub probed: Option<Probed>,
}

impl Checked {
    /// Runs every local rule on `request` with `capabilities`' image
    /// formats, then [`Capabilities::check`].
    pub(crate) fn new(capabilities: &Capabilities, request: &Request) -> Result<Checked, Error> {
        crate::counters::count("validate");
        let (violations, inputs) = rules::check(request, capabilities.media_limits());
        Violations::into_result(violations)?;
        let offering = *capabilities.check(request)?;
        Ok(Checked {
            request: request.clone(),
            offering,
            provider: capabilities.provider,
            media: capabilities.media_limits(),
            inputs,
            callback_url: None,
        })
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The offering that runs it.
    pub fn offering(&self) -> &Offering {
        &self.offering
    }

    /// The provider it was checked for.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Asks the provider to call `url` when the job ends, for providers
    /// that call back ([`Capabilities::callbacks`]); the others ignore it.
    /// The URL carries whatever authenticates the call (a token in its
    /// query): it is sent to the provider and kept nowhere else.
    ///
    /// ```
    /// use kling_core::provider::{Capabilities, Offering};
    /// use kling_core::{EditRequest, Media, Model, Request, Task};
    ///
    /// const CAPS: Capabilities =
    ///     Capabilities::new("example", &[Offering::new(Task::Edit, Model::O1, "e")]).with_callbacks();
    /// let request = Request::from(EditRequest::new(Media::url("https://example.com/in.mp4"), "Snow"));
    /// let checked = CAPS.validate(&request)?;
    /// assert_eq!(checked.callback_url(), None);
    /// let checked = checked.with_callback_url("https://me.example/kling/example?token=7f3a");
    /// assert_eq!(checked.callback_url(), Some("https://me.example/kling/example?token=7f3a"));
    /// // The token is the call's credential: never shown.
    /// assert!(!format!("{checked:?}").contains("7f3a"));
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_callback_url(mut self, url: impl Into<String>) -> Checked {
        self.callback_url = Some(CallbackUrl(url.into()));
        self
    }

    /// The URL the provider is asked to call when the job ends, if any
    /// ([`Checked::with_callback_url`]).
    pub fn callback_url(&self) -> Option<&str> {
        self.callback_url.as_ref().map(|url| url.0.as_str())
    }

    /// Every media input with what validation found, in the order of
    /// [`Request::media`].
    pub fn inputs(&self) -> &[CheckedInput] {
        &self.inputs
    }

    /// What validation found of the local input in `field` (`video`,
    /// `images[0]`, …): its probed header; `None` for a URL or an unknown
    /// field.
    pub fn probed(&self, field: &str) -> Option<&Probed> {
        self.inputs
            .iter()
            .find(|input| input.field == field)
            .and_then(|input| input.probed.as_ref())
    }

    /// The seconds the provider bills: an edit's input length rounded to
    /// the nearest second (known when the input is local), otherwise the
    /// output's length.
    ///
    /// ```
    /// use kling_core::provider::{Capabilities, Feature, Offering};
    /// use kling_core::{ComposeRequest, Media, Model, Request, Task};
    ///
    /// const CAPS: Capabilities =
    ///     Capabilities::new("example", &[Offering::new(Task::Compose, Model::O1, "c").features(&[Feature::Images])]);
    /// let request = Request::from(
    ///     ComposeRequest::new("Bloom").image(Media::url("https://example.com/a.png")).duration(7),
    /// );
    /// assert_eq!(CAPS.validate(&request)?.billed_seconds(), Some(7));
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    pub fn billed_seconds(&self) -> Option<u32> {
        if self.request.task() != Task::Edit {
            return self.request.duration();
        }
        self.inputs
            .iter()
            .find(|input| input.kind == MediaKind::Video)
            .and_then(|input| match &input.probed {
                Some(Probed::Video(video)) => {
                    u32::try_from((video.duration.as_millis() + 500) / 1000).ok()
                }
                _ => None,
            })
    }

    /// The same checked request with each local input (file or bytes)
    /// replaced by the URL `upload` gives for it, in the order of
    /// [`Request::media`]: what is sent once an uploader has run. The
    /// probed facts stay; each URL is checked as any URL input is.
    ///
    /// ```
    /// use kling_core::provider::{Capabilities, Feature, Offering};
    /// use kling_core::{EditRequest, Media, Model, Request, Task};
    ///
    /// const CAPS: Capabilities =
    ///     Capabilities::new("example", &[Offering::new(Task::Edit, Model::O1, "e").features(&[Feature::Images])]);
    /// let request = Request::from(
    ///     EditRequest::new(Media::url("https://example.com/in.mp4"), "Snow on @Image1")
    ///         .image(Media::file("tests/fixtures/image.png")),
    /// );
    /// let checked = CAPS.validate(&request)?;
    /// let sent = checked.with_urls(|field, _| Ok(format!("https://bucket.example/{field}")))?;
    /// assert_eq!(sent.request().images()[0], &Media::url("https://bucket.example/images[0]"));
    ///
    /// let refused = CAPS.validate(&request)?.with_urls(|_, _| Ok("ftp://x/y".to_owned()));
    /// assert!(refused.is_err());
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first error `upload` returns, or [`Error::InvalidRequest`] when
    /// a URL it gives is not one a provider can fetch.
    pub fn with_urls(
        self,
        mut upload: impl FnMut(&str, &Media) -> Result<String, Error>,
    ) -> Result<Checked, Error> {
        let mut urls = Vec::new();
        for input in self.request.media() {
            if !matches!(input.media, Media::Url(_)) {
                let url = upload(&input.field, input.media)?;
                if let Some(violation) = rules::check_url(input.field.clone(), &url) {
                    return Err(Error::InvalidRequest(vec![violation].into()));
                }
                urls.push(url);
            }
        }
        let mut urls = urls.into_iter();
        let request = self.request.map_media(|_, media| match media {
            Media::Url(_) => media,
            local => urls.next().map_or(local, Media::Url),
        });
        Ok(Checked { request, ..self })
    }

    /// The same checked request with what was learnt of its URL inputs
    /// before sending, by field (`video`, `images[0]`, …): each probed URL
    /// passes the rules a local file passes (length, size, resolution), and
    /// its facts make the estimate as a local file's do.
    ///
    /// ```
    /// use std::path::Path;
    /// use kling_core::probe::probe_file;
    /// use kling_core::provider::{Capabilities, Offering};
    /// use kling_core::{EditRequest, Media, Model, Request, Task, UrlFact};
    ///
    /// const CAPS: Capabilities =
    ///     Capabilities::new("example", &[Offering::new(Task::Edit, Model::O1, "e")]);
    /// let request = Request::from(EditRequest::new(Media::url("https://example.com/in.mp4"), "Snow"));
    /// // What reading the URL's headers found (here, a local copy's).
    /// let found = |name: &str| UrlFact::Probed(probe_file(Path::new(name)).unwrap());
    ///
    /// let checked = CAPS.validate(&request)?;
    /// assert_eq!(checked.billed_seconds(), None);
    /// let checked = checked.with_url_facts(vec![("video".into(), found("tests/fixtures/faststart.mp4"))])?;
    /// assert!(checked.billed_seconds().is_some());
    ///
    /// let too_long = CAPS.validate(&request)?
    ///     .with_url_facts(vec![("video".into(), found("tests/fixtures/too_long.mp4"))]);
    /// assert!(too_long.is_err());
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] with every rule a URL breaks.
    pub fn with_url_facts(mut self, facts: Vec<(String, UrlFact)>) -> Result<Checked, Error> {
        let mut violations = Vec::new();
        for (field, fact) in facts {
            let Some(input) = self.inputs.iter_mut().find(|input| input.field == field) else {
                continue;
            };
            match fact {
                UrlFact::Probed(probed) => {
                    let report = rules::check_probed(&field, input.kind, Ok(probed), self.media);
                    violations.extend(report.violations);
                    input.probed = report.probed;
                }
                UrlFact::Unusable(reason) => {
                    violations.push(rules::Violation::UrlUnusable { field, reason });
                }
                UrlFact::Unchecked(reason) => {
                    violations.push(rules::Violation::UrlUnchecked { field, reason });
                }
            }
        }
        Violations::into_result(violations)?;
        Ok(self)
    }
}
