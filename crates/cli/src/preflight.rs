//! URL inputs read before anything is sent: the rules apply to them, their
//! length prices the job, and a broken URL is refused before it is paid for.

use kling::url_probe::UrlProbeOptions;
use kling::{Checked, Media, UrlChecker};

use crate::error::Failure;
use crate::flags::PreflightFlags;
use crate::text::escaped;

/// The checker for a run, or `None` when URLs are not to be read.
pub(crate) fn checker(flags: PreflightFlags) -> Result<Option<UrlChecker>, Failure> {
    if flags.no_preflight {
        return Ok(None);
    }
    let checker = UrlChecker::new(UrlProbeOptions::default())?;
    Ok(Some(checker.strict(flags.strict)))
}

/// Whether `request` has an input given by URL: the only ones read.
pub(crate) fn has_url_inputs(request: &Checked) -> bool {
    request
        .request()
        .media()
        .iter()
        .any(|input| matches!(input.media, Media::Url(_)))
}

/// `request` with its URL inputs read by `urls`, each warning printed on
/// stderr (prefixed with `label`, e.g. a batch line); as it is when it has
/// no URL input or `urls` is `None`.
pub(crate) async fn check(
    urls: Option<&UrlChecker>,
    request: Checked,
    label: &str,
) -> Result<Checked, kling::Error> {
    let Some(urls) = urls.filter(|_| has_url_inputs(&request)) else {
        return Ok(request);
    };
    let preflight = urls.check(request).await?;
    for warning in &preflight.warnings {
        eprintln!(
            "{label}warning: {} (not checked before sending; --strict refuses it)",
            escaped(warning)
        );
    }
    Ok(preflight.checked)
}
