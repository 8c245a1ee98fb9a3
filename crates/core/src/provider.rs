//! The [`Provider`] trait every adapter implements, and the
//! [`Capabilities`] it declares.

use std::fmt;

use async_trait::async_trait;

use crate::error::Error;
use crate::job::{JobHandle, JobStatus};
use crate::request::{Model, Request, Task};
use crate::rules::Violation;

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
        }
    }

    /// Sets the optional features accepted.
    #[must_use]
    pub const fn features(mut self, features: &'static [Feature]) -> Self {
        self.features = features;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The provider's name, as used in job handles and on the command line.
    pub provider: &'static str,
    /// Every task and model offered.
    pub offerings: &'static [Offering],
    /// Whether a running job can be cancelled.
    pub cancel: bool,
}

impl Capabilities {
    /// A provider named `provider` offering `offerings`, without cancel.
    pub const fn new(provider: &'static str, offerings: &'static [Offering]) -> Self {
        Capabilities {
            provider,
            offerings,
            cancel: false,
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

/// A hosting provider of Kling's models, driven through one interface.
///
/// Adapters implement it; the `kling` facade drives it (validate, submit,
/// wait, download). It is object-safe, so a program can pick a provider at
/// run time as a `Box<dyn Provider>`.
///
/// ```
/// use async_trait::async_trait;
/// use kling_core::provider::{Capabilities, Offering, Provider};
/// use kling_core::{Error, JobHandle, JobState, JobStatus, Model, Request, Task};
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
///     async fn submit(&self, request: &Request) -> Result<JobHandle, Error> {
///         request.validate()?;
///         self.capabilities().check(request)?;
///         Ok(JobHandle::new("instant", "1"))
///     }
///     async fn status(&self, _job: &JobHandle) -> Result<JobStatus, Error> {
///         let state = JobState::Succeeded { outputs: vec![], cost: None };
///         Ok(JobStatus::new(state, serde_json::Value::Null))
///     }
/// }
///
/// let provider: Box<dyn Provider> = Box::new(Instant);
/// assert_eq!(provider.name(), "instant");
/// ```
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// What this provider offers.
    fn capabilities(&self) -> &Capabilities;

    /// The provider's name.
    fn name(&self) -> &'static str {
        self.capabilities().provider
    }

    /// Creates a job. Implementations check every local rule and
    /// [`Capabilities::check`] before sending anything, and never retry a
    /// create that may have reached the provider.
    async fn submit(&self, request: &Request) -> Result<JobHandle, Error>;

    /// Asks where a job is. Safe to retry.
    async fn status(&self, job: &JobHandle) -> Result<JobStatus, Error>;

    /// Cancels a job, where the provider allows it.
    async fn cancel(&self, job: &JobHandle) -> Result<(), Error> {
        Err(Error::Unsupported {
            provider: job.provider.clone(),
            task: None,
            model: None,
            feature: "cancelling jobs".to_owned(),
        })
    }
}
