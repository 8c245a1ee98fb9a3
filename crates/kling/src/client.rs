//! The client that drives any provider.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kling_core::provider::{Found, LostCreate, PreparedCall, Provider, Pushed};
use kling_core::{
    Charge, Checked, Delivery, Error, JobHandle, JobState, JobStatus, Media, Request,
};
use kling_http::{ClientSettings, Clock, DownloadError, DownloadOptions, RetryPolicy, TokioClock};
use tracing::Instrument as _;

use crate::callback::CallbackReceiver;
use crate::estimate::Estimate;
use crate::upload::Uploader;
use crate::wait::WaitOptions;

/// Runs requests on one provider: validate, estimate, submit, wait,
/// download.
#[derive(Debug, Clone)]
pub struct Client {
    provider: Arc<dyn Provider>,
    uploader: Option<Arc<dyn Uploader>>,
    callbacks: Option<CallbackReceiver>,
    clock: Arc<dyn Clock>,
    download_retry: RetryPolicy,
    http: ClientSettings,
    rng: Arc<Mutex<fastrand::Rng>>,
}

/// Status answers in a row that cannot be read before a wait gives up on
/// them: each is followed by the usual delay.
const UNREADABLE_STATUSES_TOLERATED: u32 = 3;

/// Where a local file stands in a dry run: the URL an uploader would give
/// is not known until it runs.
const UPLOAD_PLACEHOLDER: &str = "https://upload.invalid/";

impl Client {
    /// A client for `provider`.
    pub fn new(provider: impl Provider + 'static) -> Self {
        Self::from_arc(Arc::new(provider))
    }

    /// A client for a provider chosen at run time.
    pub fn from_arc(provider: Arc<dyn Provider>) -> Self {
        Client {
            provider,
            uploader: None,
            callbacks: None,
            clock: Arc::new(TokioClock::new()),
            download_retry: RetryPolicy::default(),
            http: ClientSettings::default(),
            rng: Arc::new(Mutex::new(fastrand::Rng::new())),
        }
    }

    /// Uploads local files with `uploader` before submitting, for
    /// providers that fetch media by URL.
    #[must_use]
    pub fn with_uploader(mut self, uploader: Arc<dyn Uploader>) -> Self {
        self.uploader = Some(uploader);
        self
    }

    /// Asks providers that call back ([`Capabilities::callbacks`](kling_core::provider::Capabilities::callbacks))
    /// to call `receiver` when a job ends: each create gets a URL of its
    /// own, and a wait ends when it is called, after one status query
    /// confirms it. Polling goes on, less often, in case a call is lost.
    /// Providers that do not call back are polled as before. A provider
    /// that signs its calls brings its own check
    /// ([`Provider::callback_verifier`]), unless the receiver already has
    /// one for it.
    #[must_use]
    pub fn with_callbacks(mut self, receiver: CallbackReceiver) -> Self {
        if self.provider.capabilities().callbacks
            && let Some(verifier) = self.provider.callback_verifier()
        {
            receiver.verify_unless_set(self.provider.name(), verifier);
        }
        self.callbacks = Some(receiver);
        self
    }

    /// The receiver jobs are created with, for the provider this client
    /// drives; `None` when it does not call back.
    fn callbacks(&self) -> Option<&CallbackReceiver> {
        self.callbacks
            .as_ref()
            .filter(|_| self.provider.capabilities().callbacks)
    }

    /// When the provider last called back about `job` (a call the wait
    /// took), while this client waits for it; `None` when it has not, when
    /// the wait has ended, or when `job` was not created with callbacks.
    pub fn callback_arrived(&self, job: &JobHandle) -> Option<std::time::SystemTime> {
        self.callbacks()?.arrived(job)
    }

    /// Downloads results with the caller's HTTP settings (a custom CA, a
    /// proxy): [`Client::download`] and whoever starts from
    /// [`Client::download_options`] (the ledger does). The provider's API
    /// calls take theirs from the adapter's
    /// [`ApiClient`](kling_http::ApiClient::with_settings).
    ///
    /// ```
    /// use kling::{ClientSettings, Client};
    ///
    /// # fn run(provider: std::sync::Arc<dyn kling::Provider>) {
    /// let proxied = ClientSettings::from_builder(|| {
    ///     kling_http::client_builder()
    ///         .proxy(reqwest::Proxy::all("http://proxy.internal:3128").unwrap().basic_auth("me", "secret"))
    /// });
    /// let client = Client::from_arc(provider).with_http(proxied);
    /// # drop(client);
    /// # }
    /// ```
    #[must_use]
    pub fn with_http(mut self, settings: ClientSettings) -> Self {
        self.http = settings;
        self
    }

    /// Sets the time source waits go through (tests use virtual time).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the wait policy's jitter, so a wait can be repeated exactly.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        *self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fastrand::Rng::with_seed(seed);
        self
    }

    /// The provider.
    pub fn provider(&self) -> &dyn Provider {
        &*self.provider
    }

    /// Checks every local rule, probing each local file once, that the
    /// provider offers what `request` uses, and that its local files can
    /// reach it (inline, or through the uploader). The [`Checked`] request
    /// it returns is what everything else here takes: nothing unchecked is
    /// priced, prepared or sent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] or [`Error::Unsupported`]; nothing is sent.
    pub fn validate(&self, request: &Request) -> Result<Checked, Error> {
        let checked = self.provider.capabilities().validate(request)?;
        self.check_local_files(request)?;
        Ok(checked)
    }

    /// Refuses local inputs on a provider that fetches URLs when no
    /// uploader is set, saying what would work.
    fn check_local_files(&self, request: &Request) -> Result<(), Error> {
        let capabilities = self.provider.capabilities();
        if capabilities.takes_local_files() || self.uploader.is_some() {
            return Ok(());
        }
        let Some(local) = request
            .media()
            .into_iter()
            .find(|input| !matches!(input.media, Media::Url(_)))
        else {
            return Ok(());
        };
        let inline: Vec<&str> = crate::PROVIDERS
            .iter()
            .filter(|p| p.capabilities.takes_local_files())
            .map(kling_http::Descriptor::name)
            .collect();
        let inline = if inline.is_empty() {
            String::new()
        } else {
            format!(
                ", or use a provider that takes local files itself ({})",
                inline.join(", ")
            )
        };
        Err(Error::unsupported(
            capabilities.provider,
            format!(
                "local files ({}: {}): it fetches inputs by URL. Give a URL, plug an Uploader \
                 that turns files into URLs (Client::with_uploader; kling::upload::PostUploader \
                 for the sandbox){inline}",
                local.field, local.media
            ),
        ))
    }

    /// What `checked` will cost, from the provider's published price and
    /// the seconds it bills (probed when it was checked).
    pub fn estimate(&self, checked: &Checked) -> Estimate {
        Estimate::new(
            checked.offering().price(checked.request().mode()),
            checked.billed_seconds(),
        )
    }

    /// The create call `submit` would send, without sending it or reading a
    /// key: what `--dry-run` prints. With an uploader, local files show as
    /// `https://upload.invalid/NAME`; with callbacks, the token as `TOKEN`.
    ///
    /// # Errors
    ///
    /// The adapter's refusals.
    pub fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error> {
        if let Some(receiver) = self.callbacks()
            && checked.callback_url().is_none()
        {
            let url = receiver.url_for(self.provider.name(), "TOKEN");
            return self.prepare_inputs(&checked.clone().with_callback_url(url));
        }
        self.prepare_inputs(checked)
    }

    fn prepare_inputs(&self, checked: &Checked) -> Result<PreparedCall, Error> {
        if self.uploader().is_some() {
            let placeholder = checked.clone().with_urls(|_, media| {
                let name = match media {
                    Media::File(path) => path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    _ => "bytes".to_owned(),
                };
                Ok(format!("{UPLOAD_PLACEHOLDER}{name}"))
            })?;
            return self.provider.prepare(&placeholder);
        }
        self.provider.prepare(checked)
    }

    /// Uploads local inputs when an uploader is set, and creates the job,
    /// once.
    ///
    /// # Errors
    ///
    /// The uploader's; the provider's refusals; a transport error that
    /// says whether the create may have been sent.
    pub async fn submit(&self, checked: &Checked) -> Result<JobHandle, Error> {
        let sent = self.upload_inputs(checked).await?;
        self.create(&sent).await
    }

    /// Uploads `checked`'s local inputs when the provider fetches URLs and
    /// an uploader is set: the request as it will be sent. Nothing is
    /// created, so a failure here never leaves a paid job.
    ///
    /// This and [`Client::create`] are [`Client::submit`] in two steps, for
    /// a caller that records the moment the create leaves (the ledger).
    ///
    /// # Errors
    ///
    /// The uploader's.
    pub async fn upload_inputs(&self, checked: &Checked) -> Result<Checked, Error> {
        match self.uploader() {
            Some(uploader) => upload_all(&*uploader, checked).await,
            None => Ok(checked.clone()),
        }
    }

    /// What local files go up through before the create: the caller's
    /// uploader (explicit beats the default), else the provider's own
    /// storage; `None` when the provider takes them inline or no uploader
    /// is set.
    fn uploader(&self) -> Option<Arc<dyn Uploader>> {
        if self.provider.capabilities().local_files {
            return None;
        }
        self.uploader.clone().or_else(|| self.provider.storage())
    }

    /// Creates the job for a request whose inputs are ready (see
    /// [`Client::upload_inputs`]), once: a create is never retried.
    ///
    /// # Errors
    ///
    /// As [`Client::submit`], less the uploader's.
    pub async fn create(&self, checked: &Checked) -> Result<JobHandle, Error> {
        let span = tracing::info_span!(
            "submit",
            provider = self.provider.name(),
            model = checked.offering().wire_model,
            job = tracing::field::Empty,
        );
        let opened = match self.callbacks() {
            Some(receiver) if checked.callback_url().is_none() => {
                Some((receiver, receiver.open(self.provider.name())?))
            }
            _ => None,
        };
        let created = match &opened {
            Some((_, opened)) => {
                let checked = checked.clone().with_callback_url(opened.url.clone());
                self.provider
                    .submit(&checked)
                    .instrument(span.clone())
                    .await
            }
            None => self.provider.submit(checked).instrument(span.clone()).await,
        };
        if let Some((receiver, opened)) = &opened {
            match &created {
                Ok(job) => receiver.bind(&opened.token, job),
                // The job may exist: its call still comes, and is logged.
                Err(e) if e.may_have_been_sent() => {}
                Err(_) => receiver.close(&opened.token),
            }
        }
        match &created {
            Ok(job) => {
                span.record("job", tracing::field::display(&job.id));
                span.in_scope(|| tracing::info!("job created"));
            }
            Err(e) => span.in_scope(|| {
                tracing::warn!(may_exist = e.may_have_been_sent(), error = %e, "create failed");
            }),
        }
        created
    }

    /// Asks where a job is.
    ///
    /// # Errors
    ///
    /// The provider's or the transport's.
    pub async fn status(&self, job: &JobHandle) -> Result<JobStatus, Error> {
        self.provider.status(job).await
    }

    /// Cancels a job, where the provider allows it.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] where it does not.
    pub async fn cancel(&self, job: &JobHandle) -> Result<(), Error> {
        self.provider.cancel(job).await
    }

    /// Asks what the provider charged for a job, for providers that show it
    /// apart from the create's answer and the status (Oxen); `None` when it
    /// has not charged (yet) or does not say. See [`Provider::charge`].
    ///
    /// # Errors
    ///
    /// The provider's or the transport's.
    pub async fn charge(&self, job: &JobHandle) -> Result<Option<Charge>, Error> {
        self.provider.charge(job).await
    }

    /// Looks for the job a create whose answer was lost may have made,
    /// where the provider allows it ([`Capabilities::lookup`](kling_core::provider::Capabilities::lookup)).
    /// `lost.request` must be the request as sent: with an uploader, the
    /// one whose local files were replaced by their URLs. See
    /// [`Provider::find_lost`].
    ///
    /// # Errors
    ///
    /// The provider's or the transport's.
    pub async fn find_lost(&self, lost: &LostCreate<'_>) -> Result<Found, Error> {
        self.provider.find_lost(lost).await
    }

    /// Waits for a job to end, checking its status as `options.policy`
    /// says, and returns its final status when it succeeded.
    ///
    /// # Errors
    ///
    /// [`Error::JobFailed`], [`Error::JobCancelled`], [`Error::Timeout`]
    /// (carrying the job, which may still finish), or a status error.
    pub async fn wait(&self, job: &JobHandle, options: &WaitOptions) -> Result<JobStatus, Error> {
        self.wait_with(job, options, |_| {}).await
    }

    /// Like [`Client::wait`], calling `progress` with every status seen.
    ///
    /// # Errors
    ///
    /// As [`Client::wait`].
    pub async fn wait_with(
        &self,
        job: &JobHandle,
        options: &WaitOptions,
        progress: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, Error> {
        let span = tracing::info_span!(
            "wait",
            provider = job.provider.as_str(),
            model = job.model.as_deref().unwrap_or_default(),
            job = job.id.as_str(),
        );
        // However the wait ends (an end state, an error, the deadline, the
        // future dropped), the job's callback ticket goes with it.
        let _ticket = self.callbacks().map(|receiver| Finish { receiver, job });
        // Boxed: a wait's state (the push, the callback, the sleep) would
        // otherwise sit inline in every caller's future.
        Box::pin(self.wait_inner(job, options, progress))
            .instrument(span)
            .await
    }

    async fn wait_inner(
        &self,
        job: &JobHandle,
        options: &WaitOptions,
        mut progress: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, Error> {
        let start = self.clock.now();
        let timeout = |after: Duration| Error::Timeout {
            job: Some(Box::new(job.clone())),
            after,
            delivery: Delivery::MaybeSent,
        };
        let mut check = 0;
        let mut push_lost = false;
        let mut unreadable = 0;
        let mut last_state: Option<&'static str> = None;
        loop {
            let mut delay = {
                let mut rng = self
                    .rng
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                options.policy.delay(check, &mut rng)
            };
            // After a lost push, one plain check before listening again.
            let push = if push_lost {
                None
            } else {
                self.provider.push(job)
            };
            let callback = self.callbacks().and_then(|r| r.arrival(job));
            // Checks are a safety net while the provider pushes. The first
            // comes as usual with a push (a job that ended before the wait
            // began is never pushed), but not with a callback: a call that
            // came before the wait began is kept for it.
            if (push.is_some() && check > 0) || callback.is_some() {
                delay = delay.max(options.policy.while_pushing);
            }
            let elapsed = self.clock.now().saturating_sub(start);
            let remaining = options.deadline.saturating_sub(elapsed);
            let heard = tokio::select! {
                pushed = some_or_never(push) => Heard::Pushed(pushed),
                () = some_or_never(callback) => Heard::CalledBack,
                () = self.clock.sleep(delay.min(remaining)) => Heard::Nothing,
            };
            push_lost = false;
            if let (Heard::CalledBack, Some(receiver)) = (&heard, self.callbacks()) {
                // Answered by the status asked now: a call that comes
                // while it is asked is news again.
                receiver.rearm(job);
            }
            let asked = match heard {
                Heard::Pushed(Pushed::Ended(status)) => {
                    tracing::debug!(state = status.state.name(), "push received");
                    Ok(status)
                }
                Heard::Pushed(_) => {
                    tracing::debug!("push lost; asking the status");
                    push_lost = true;
                    self.status_within(job, start, options, timeout).await
                }
                Heard::Nothing if delay >= remaining => return Err(timeout(options.deadline)),
                // A call back says nothing to be believed: it is confirmed
                // by asking, as a poll would.
                Heard::CalledBack | Heard::Nothing => {
                    self.status_within(job, start, options, timeout).await
                }
            };
            check += 1;
            let status = match asked {
                Ok(status) => {
                    unreadable = 0;
                    status
                }
                // An answer that cannot be read says nothing of the job,
                // which may be fine: ask again at the next check, a few
                // times, before giving up.
                Err(e @ Error::Protocol { .. }) => {
                    unreadable += 1;
                    if unreadable > UNREADABLE_STATUSES_TOLERATED {
                        return Err(e);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            // The state's name only: a success carries result URLs, which
            // may be signed.
            let state = status.state.name();
            if last_state != Some(state) {
                tracing::info!(state, check, "status");
                last_state = Some(state);
            }
            progress(&status);
            if let JobState::Succeeded { .. } = status.state {
                return Ok(status);
            }
            if let Some(ended) = Error::job_ended(job, &status.state) {
                return Err(ended);
            }
        }
    }

    /// Asks the job's status, bounded by what is left of the deadline.
    async fn status_within(
        &self,
        job: &JobHandle,
        start: Duration,
        options: &WaitOptions,
        timeout: impl Fn(Duration) -> Error,
    ) -> Result<JobStatus, Error> {
        let remaining = options
            .deadline
            .saturating_sub(self.clock.now().saturating_sub(start));
        tokio::time::timeout(remaining, self.provider.status(job))
            .await
            .map_err(|_| timeout(options.deadline))?
    }

    /// Downloads a succeeded job's first result to `dest` with the default
    /// [`DownloadOptions`]; see [`Client::download_with_options`].
    ///
    /// # Errors
    ///
    /// As [`Client::download_with_options`].
    pub async fn download(
        &self,
        job: &JobHandle,
        status: &JobStatus,
        dest: &Path,
    ) -> Result<u64, Error> {
        self.download_with(job, status, dest, &|_, _| {}).await
    }

    /// Like [`Client::download`], calling `progress` with the bytes on disk
    /// and the total, when known, as they arrive.
    ///
    /// # Errors
    ///
    /// As [`Client::download_with_options`].
    pub async fn download_with(
        &self,
        job: &JobHandle,
        status: &JobStatus,
        dest: &Path,
        progress: kling_http::Progress<'_>,
    ) -> Result<u64, Error> {
        let options = self.download_options();
        self.download_with_options(job, status, dest, &options, progress)
            .await
    }

    /// The download options this client's downloads start from: the
    /// defaults, with its HTTP settings ([`Client::with_http`]).
    pub fn download_options(&self) -> DownloadOptions {
        DownloadOptions::default()
            .retry(self.download_retry)
            .settings(self.http.clone())
    }

    /// Downloads a succeeded job's first result to `dest`, resumably, and
    /// returns its size (see [`kling_http::download_with_options`]): through
    /// `dest.part`, locked so that one process writes it, renamed into place
    /// only once its length is the one announced and it reads as a video.
    /// When the result URL has expired (403, 404) or served something that
    /// is not a video (an HTML error page), asks the job's status once for
    /// a fresh URL and tries again. The API key is never sent to the
    /// result's host.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] carrying the job when `options.deadline` passes
    /// (the partial file is kept for the next try); [`Error::Local`]
    /// naming the job when the file cannot be written (a full disk, a
    /// failed rename, a `dest` that is not a regular file); otherwise an
    /// [`Error::Transport`] naming the job, whose source is the
    /// [`DownloadError`]: retries spent or a stall (the partial file kept),
    /// a result that is not a video twice, another download writing `dest`
    /// ([`DownloadError::Busy`]). None
    /// of them may have created anything: [`Error::may_have_been_sent`] is
    /// false. Or the refreshed status's error.
    pub async fn download_with_options(
        &self,
        job: &JobHandle,
        status: &JobStatus,
        dest: &Path,
        options: &DownloadOptions,
        progress: kling_http::Progress<'_>,
    ) -> Result<u64, Error> {
        let started = self.clock.now();
        let remaining = || {
            options
                .deadline
                .saturating_sub(self.clock.now().saturating_sub(started))
        };
        let timeout = || Error::Timeout {
            job: Some(Box::new(job.clone())),
            after: options.deadline,
            delivery: Delivery::NotSent,
        };
        let span = tracing::info_span!(
            "download",
            provider = job.provider.as_str(),
            job = job.id.as_str(),
        );
        let fetch = |url: String, options: DownloadOptions| {
            let clock = Arc::clone(&self.clock);
            tracing::debug!(parent: &span, url = %kling_http::redacted(&url), "downloading");
            async move { kling_http::download_with_options(&url, dest, &options, clock, progress).await }
                .instrument(span.clone())
        };
        match fetch(first_output(job, status)?, options.clone()).await {
            Err(DownloadError::Expired { .. } | DownloadError::NotAVideo { .. }) => {
                tracing::info!(parent: &span, "the result URL expired; asking the status for a fresh one");
                let fresh = tokio::time::timeout(remaining(), self.provider.status(job))
                    .await
                    .map_err(|_| timeout())??;
                let left = remaining();
                if left.is_zero() {
                    return Err(timeout());
                }
                fetch(first_output(job, &fresh)?, options.clone().deadline(left))
                    .await
                    .map_err(|e| download_error(job, e, options))
            }
            other => other.map_err(|e| download_error(job, e, options)),
        }
    }
}

/// Forgets a job's callback ticket when dropped: its wait has ended, so
/// later calls about it are replays.
struct Finish<'a> {
    receiver: &'a CallbackReceiver,
    job: &'a JobHandle,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.receiver.finish(self.job);
    }
}

/// What ended one pause of a wait.
enum Heard {
    Pushed(Pushed),
    CalledBack,
    Nothing,
}

/// `future`'s output, or never when there is none.
async fn some_or_never<T>(future: Option<impl std::future::Future<Output = T>>) -> T {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

fn first_output(job: &JobHandle, status: &JobStatus) -> Result<String, Error> {
    match &status.state {
        JobState::Succeeded { outputs, .. } if !outputs.is_empty() => Ok(outputs[0].clone()),
        other => Err(Error::Protocol {
            provider: job.provider.clone(),
            message: format!(
                "job {job} has no result to download (it is {})",
                other.name()
            ),
            body: status.raw.to_string(),
        }),
    }
}

/// A download's error as the facade's: the deadline as a timeout on the
/// job, a file that cannot be written as a local error, anything else as a
/// transport error naming it. A download creates nothing, so none of them
/// may have been sent.
fn download_error(job: &JobHandle, error: DownloadError, options: &DownloadOptions) -> Error {
    if let DownloadError::TimedOut { .. } = error {
        return Error::Timeout {
            job: Some(Box::new(job.clone())),
            after: options.deadline,
            delivery: Delivery::NotSent,
        };
    }
    match error {
        // The disk, not the connection: say so.
        DownloadError::Io { .. } | DownloadError::NotARegularFile { .. } => Error::Local {
            job: Some(Box::new(job.clone())),
            what: format!("the result of {job} could not be written"),
            error: Box::new(error),
        },
        error => Error::Transport {
            provider: job.provider.clone(),
            delivery: Delivery::NotSent,
            attempt: Some(format!("downloading the result of {job}")),
            source: Box::new(error),
        },
    }
}

/// Uploads every local input and returns the checked request with URLs
/// in their place.
async fn upload_all(uploader: &dyn Uploader, checked: &Checked) -> Result<Checked, Error> {
    let mut urls = Vec::new();
    for input in checked.request().media() {
        if !matches!(input.media, Media::Url(_)) {
            let url = uploader.upload(input.media).await?;
            tracing::info!(field = input.field, url = %kling_http::redacted(&url), "uploaded");
            urls.push(url);
        }
    }
    let mut urls = urls.into_iter();
    checked.clone().with_urls(|field, _| {
        urls.next()
            .ok_or_else(|| Error::unsupported("the uploader", format!("a URL for {field}")))
    })
}
