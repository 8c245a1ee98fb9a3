//! Reading URL inputs before a job that fetches them is paid for.

use std::sync::Arc;

use kling_core::{Checked, Error, Media, UrlFact};
use kling_http::probe::{UrlProbe, UrlProbeError, UrlProbeOptions, probe_url};
use tokio::sync::Semaphore;

/// Reads the headers of a checked request's URL inputs over HTTP `Range`
/// requests, so that the rules apply to them as to local files and their
/// length prices the job. A URL that answers 404, 403 or 410, serves a web
/// page or is not usable media is refused; one that cannot be reached or
/// checked is a warning (the provider may reach what this machine
/// cannot), or a refusal when [strict](UrlChecker::strict).
///
/// ```no_run
/// use kling::{EditRequest, Media, Request, UrlChecker};
///
/// # async fn run(client: kling::Client) -> Result<(), kling::Error> {
/// let request = Request::from(EditRequest::new(Media::url("https://cdn.example/street.mp4"), "Snow"));
/// let checker = UrlChecker::new(Default::default())?;
/// let preflight = checker.check(client.validate(&request)?).await?;
/// for warning in &preflight.warnings {
///     eprintln!("warning: {warning}");
/// }
/// println!("billed seconds: {:?}", preflight.checked.billed_seconds());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct UrlChecker {
    http: reqwest::Client,
    options: UrlProbeOptions,
    strict: bool,
    /// Probes in flight, across every request this checker (and its
    /// clones) reads: memory and connections stay at this many probes'.
    slots: Arc<Semaphore>,
}

/// Probes one checker runs at once.
const PROBES_AT_ONCE: usize = 16;

/// A request whose URL inputs were read.
#[derive(Debug)]
#[non_exhaustive]
pub struct Preflight {
    /// The request, with what its URLs' headers say.
    pub checked: Checked,
    /// What was read of each URL input, by field.
    pub probes: Vec<(String, UrlProbe)>,
    /// URLs that could not be checked, and why (URLs without their query).
    pub warnings: Vec<String>,
}

impl UrlChecker {
    /// A checker probing with `options`.
    ///
    /// # Errors
    ///
    /// [`Error::Local`] when the HTTP client cannot start (no TLS backend).
    pub fn new(options: UrlProbeOptions) -> Result<UrlChecker, Error> {
        let http = options.client().map_err(|e| Error::Local {
            job: None,
            what: "cannot start the HTTP client that checks URLs".to_owned(),
            error: Box::new(e),
        })?;
        Ok(UrlChecker {
            http,
            options,
            strict: false,
            slots: Arc::new(Semaphore::new(PROBES_AT_ONCE)),
        })
    }

    /// Refuses URLs that cannot be reached or checked, too.
    #[must_use]
    pub fn strict(mut self, strict: bool) -> UrlChecker {
        self.strict = strict;
        self
    }

    /// Probes `url` alone: what `kling validate URL` shows.
    ///
    /// # Errors
    ///
    /// As [`probe_url`].
    pub async fn probe(&self, url: &str) -> Result<UrlProbe, UrlProbeError> {
        // The semaphore is never closed: a permit always comes.
        let _slot = self.slots.acquire().await;
        probe_url(&self.http, url, &self.options).await
    }

    /// What a probe's answer makes of a URL input: facts the rules apply
    /// to, a reason to refuse it, or (`Err`) a warning. The one reading of
    /// a probe, for requests and for `kling validate`.
    pub fn fact(&self, found: Result<UrlProbe, UrlProbeError>) -> Result<UrlFact, String> {
        match found {
            Ok(probe) => Ok(UrlFact::Probed(probe.probed)),
            Err(e) if e.is_refusal() => Ok(UrlFact::Unusable(e.to_string())),
            Err(e) if self.strict => Ok(UrlFact::Unchecked(e.to_string())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads every URL input of `checked` at once, and applies the rules
    /// to what was found.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] with every rule a URL breaks; nothing is
    /// sent.
    pub async fn check(&self, checked: Checked) -> Result<Preflight, Error> {
        let urls: Vec<(String, String)> = checked
            .request()
            .media()
            .into_iter()
            .filter_map(|input| match input.media {
                Media::Url(url) => Some((input.field, url.clone())),
                _ => None,
            })
            .collect();
        let found = futures_util::future::join_all(
            urls.iter()
                .map(|(field, url)| async move { (field.clone(), self.probe(url).await) }),
        )
        .await;
        let mut facts = Vec::new();
        let mut probes = Vec::new();
        let mut warnings = Vec::new();
        for (field, result) in found {
            if let Ok(probe) = &result {
                probes.push((field.clone(), probe.clone()));
            }
            match self.fact(result) {
                Ok(fact) => facts.push((field, fact)),
                Err(warning) => warnings.push(format!("{field}: {warning}")),
            }
        }
        Ok(Preflight {
            checked: checked.with_url_facts(facts)?,
            probes,
            warnings,
        })
    }
}
