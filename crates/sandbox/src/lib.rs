//! An offline emulator of the ShortAPI, AI/ML API, Oxen.ai and fal.ai
//! protocols for Kling's video models, on loopback.
//!
//! The sandbox answers as each provider does, under `/shortapi`,
//! `/aimlapi`, `/oxen` and `/fal` of one base URL:
//!
//! - it checks every create body against the providers' published schemas
//!   (`schemas/published/`, never kling-rs's own types) and refuses a broken
//!   one in that provider's error shape: ShortAPI with `code != 0`, AI/ML API
//!   with a 400 `{message, path, requestId, statusCode, timestamp}`, Oxen by
//!   accepting the job and then failing it with `error_message`;
//! - jobs move through each provider's status sequence (ShortAPI 0, 1, 2;
//!   AI/ML API queued, generating, completed; Oxen queued, processing,
//!   succeeded) on a clock tests can run, freeze or advance;
//! - results are real MP4 files; a video sent inline (`data:` URI) or
//!   uploaded to the sandbox is echoed back as the result;
//! - ShortAPI's `callback_url` gets its POST, Oxen's `GET /api/events`
//!   streams `media_generation_completed`, Oxen's `DELETE` cancels;
//! - fal's queue accepts any JSON submit and fails a request whose input
//!   breaks its endpoint's schema when it runs, as fal does; its status
//!   stream sends each change, its `PUT …/cancel` cancels a queued or
//!   running request, its storage hands out presigned upload URLs (a PUT
//!   with a key is refused), and its `fal_webhook` gets an ED25519-signed
//!   POST whose key is published at `/fal/.well-known/jwks.json`;
//! - charges are reported as each provider does: ShortAPI's `data.amount`
//!   at create (the published prices), AI/ML API's `credits_used` once
//!   completed, Oxen's `cost` on the rows of `GET /api/ai/generations`
//!   (filters `model`, `status`, `media_type`, pages newest first) and
//!   `GET /api/ai/generations/{id}`, which also carry each job's enqueued
//!   parameters. Oxen publishes no price: the sandbox charges its own
//!   $0.10 a second of video once a job succeeds;
//! - any non-empty key is accepted (`Bearer`, or `Key` for fal), a missing
//!   one gets the provider's 401;
//! - faults are injected on demand ([`Fault`]), from a seeded generator so a
//!   test is repeatable;
//! - `GET /_sandbox/stats` counts what it saw ([`Stats`]).
//!
//! # Testing your own integration
//!
//! Start a sandbox in your test, point your client at
//! [`Sandbox::url`], and assert on what happened:
//!
//! ```
//! use std::time::Duration;
//! use kling_sandbox::{Config, Provider, Sandbox};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sandbox = Sandbox::start(Config::default().job_duration(Duration::ZERO)).await?;
//! let shortapi = sandbox.url(Provider::ShortApi); // http://127.0.0.1:PORT/shortapi
//! // ... run your code against `shortapi` instead of https://api.shortapi.ai ...
//! assert_eq!(sandbox.stats()["shortapi"].creates, 0);
//! sandbox.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! Or run it as a process with `kling sandbox --listen 127.0.0.1:8787`, and
//! read `GET /_sandbox/stats` between steps.

#![deny(missing_docs)]

mod faults;
mod files;
mod protocol;
mod protocols;
mod schemas;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

pub use faults::{Fault, FaultKind, Operation, ParseFaultError};
pub use protocols::{Provider, UnknownProvider};
pub use state::{ProviderStats, Stats};

use protocol::DropConnection;
use state::State;

/// How a sandbox runs.
///
/// ```
/// use std::time::Duration;
/// use kling_sandbox::{Config, Fault};
///
/// let config = Config::default()
///     .job_duration(Duration::from_secs(2))
///     .fault("429:0.2@shortapi/status".parse::<Fault>().unwrap())
///     .seed(7);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    listen: SocketAddr,
    job_duration: Duration,
    frozen_clock: bool,
    faults: Vec<Fault>,
    seed: u64,
    keep_alive: Duration,
    max_running: Option<usize>,
}

impl Default for Config {
    /// Loopback on a free port, jobs of 3 seconds on the real clock, no
    /// faults, seed 0, Oxen keep-alives every 15 seconds.
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            job_duration: Duration::from_secs(3),
            frozen_clock: false,
            faults: Vec::new(),
            seed: 0,
            keep_alive: Duration::from_secs(15),
            max_running: None,
        }
    }
}

impl Config {
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// How long a job takes from create to its end; the first quarter is
    /// spent queued. Zero ends every job at once.
    #[must_use]
    pub fn job_duration(mut self, duration: Duration) -> Self {
        self.job_duration = duration;
        self
    }

    /// Freezes the clock: time moves only by [`Sandbox::advance`], so tests
    /// step through a job's phases exactly.
    #[must_use]
    pub fn manual_clock(mut self) -> Self {
        self.frozen_clock = true;
        self
    }

    /// Adds a fault.
    #[must_use]
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Seeds the generator behind faults and ids (default 0).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How often Oxen's event stream sends `: keep-alive` (default 15 s).
    #[must_use]
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = interval;
        self
    }

    /// Lets at most `jobs` jobs of one provider be queued or running at
    /// once: a create beyond them is refused with a 429 that names the
    /// concurrency limit (as AI/ML API does, with Kling's code 1303).
    /// Unlimited by default.
    ///
    /// ```
    /// let config = kling_sandbox::Config::default().max_running(2);
    /// # drop(config);
    /// ```
    #[must_use]
    pub fn max_running(mut self, jobs: usize) -> Self {
        self.max_running = Some(jobs);
        self
    }
}

/// A running sandbox. Dropping it without [`Sandbox::stop`] leaves it
/// serving until the runtime ends.
#[derive(Debug)]
pub struct Sandbox {
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Sandbox {
    /// Starts a sandbox on the configured address.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn start(config: Config) -> io::Result<Sandbox> {
        let listener = TcpListener::bind(config.listen).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let state = State::new(config, base_url);
        let router = router(Arc::clone(&state));
        let (shutdown, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(serve(listener, router, stopped.clone()));
        tasks.spawn(announce(Arc::clone(&state), stopped));
        Ok(Sandbox {
            state,
            shutdown,
            tasks,
        })
    }

    /// The base URL: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The base URL of one provider's API: `http://127.0.0.1:PORT/shortapi`.
    pub fn url(&self, provider: Provider) -> String {
        format!("{}/{provider}", self.state.base_url)
    }

    /// What the sandbox has seen so far.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// The ids of `provider`'s jobs, oldest first: what a provider's
    /// dashboard shows, for tests of jobs whose create's answer was lost.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let sandbox = kling_sandbox::Sandbox::start(Default::default()).await.unwrap();
    /// assert!(sandbox.job_ids(kling_sandbox::Provider::ShortApi).is_empty());
    /// # });
    /// ```
    pub fn job_ids(&self, provider: Provider) -> Vec<String> {
        self.state.job_ids(provider)
    }

    /// Moves the sandbox's clock forward.
    pub fn advance(&self, by: Duration) {
        self.state.clock.advance(by);
    }

    /// Stores `bytes` as an upload and returns its URL, as `POST /uploads`
    /// does. A video given to a job by this URL is echoed as its result.
    pub fn upload(&self, bytes: impl Into<Arc<[u8]>>) -> String {
        self.state.add_upload(bytes.into())
    }

    /// Ends every open Oxen event stream, as a dropped connection would;
    /// clients may open new ones.
    pub fn drop_event_streams(&self) {
        self.state.cut_streams.send_modify(|cuts| *cuts += 1);
    }

    /// Stops serving and closes every connection.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        self.tasks.shutdown().await;
    }
}

/// Writes a valid MP4 (1280x720, 5 s) of exactly `size` bytes to `path`:
/// the sandbox's sample result followed by a `free` box of zeros. Probing
/// reads only its headers, so it passes every rule while being as large
/// as a test needs (at most 200 MB passes the size rule).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("big.mp4");
/// kling_sandbox::write_padded_video(&path, 1_000_000)?;
/// assert_eq!(std::fs::metadata(&path)?.len(), 1_000_000);
/// assert!(kling_core::rules::check_file(&path, None).is_ok());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// When the file cannot be written, or `size` leaves no room for the
/// padding box's header.
pub fn write_padded_video(path: &std::path::Path, size: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let sample = state::SAMPLE_RESULT;
    let padding = size
        .checked_sub(sample.len() as u64)
        .filter(|p| *p >= 16)
        .ok_or_else(|| std::io::Error::other(format!("{size} bytes is too small")))?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    file.write_all(sample)?;
    // A 64-bit size, so any padding fits.
    file.write_all(&1u32.to_be_bytes())?;
    file.write_all(b"free")?;
    file.write_all(&padding.to_be_bytes())?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = padding - 16;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.flush()
}

/// What the sandbox says of a create body for `model` on `provider`: every
/// way it breaks the published schema (for Oxen, the queue's envelope's
/// too), or an unknown model. Empty when the body passes. Adapters check
/// their bodies with it without starting a server.
///
/// ```
/// use kling_sandbox::{Provider, published_schema_errors};
/// use serde_json::json;
///
/// let body = json!({"model": "klingai/video-o1-image-to-video", "prompt": "Bloom"});
/// let errors = published_schema_errors(Provider::AimlApi, "klingai/video-o1-image-to-video", &body);
/// assert_eq!(errors, [r#"/: "image_url" is a required property"#]);
/// ```
pub fn published_schema_errors(
    provider: Provider,
    model: &str,
    body: &serde_json::Value,
) -> Vec<String> {
    let Some(schema) = schemas::model(provider, model) else {
        return vec![format!(
            "unknown model {model:?}; the sandbox has: {}",
            schemas::models(provider).join(", ")
        )];
    };
    let mut errors = schemas::check_envelope(provider, body);
    errors.extend(schema.check(body));
    errors
}

/// Every route, the providers' under their prefixes. Bodies up to 512 MiB
/// are read: inline videos travel as base64 in JSON.
fn router(state: Arc<State>) -> Router {
    Provider::ALL
        .iter()
        .fold(Router::new(), |router, provider| {
            let protocol = provider.protocol();
            router.nest(&format!("/{}", protocol.name), (protocol.routes)())
        })
        .merge(files::routes())
        .layer(DefaultBodyLimit::max(512 << 20))
        .with_state(state)
}

/// Accepts connections until told to stop. A response marked
/// [`DropConnection`] is not sent: the service fails, and hyper closes the
/// connection, as a provider whose connection drops.
async fn serve(listener: TcpListener, router: Router, mut stopped: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let router = router.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let router = router.clone();
                async move {
                    let response = router
                        .oneshot(request.map(axum::body::Body::new))
                        .await
                        .unwrap_or_else(|never| match never {});
                    if response.extensions().get::<DropConnection>().is_some() {
                        Err(io::Error::other(
                            "connection dropped on purpose (sandbox fault `drop`)",
                        ))
                    } else {
                        Ok(response)
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// Sends what jobs announce when they start or end, as each provider
/// does (an event stream, a callback).
async fn announce(state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tick.tick() => {}
        }
        for due in state.due_announcements() {
            (due.provider.protocol().announce)(&state, &due);
        }
    }
}

/// The length of a video given inline or by upload, in whole seconds
/// rounded to the nearest, when it is an MP4 the probe can read.
fn video_seconds(bytes: &[u8]) -> Option<u32> {
    match kling_core::probe::probe_reader(std::io::Cursor::new(bytes)).ok()? {
        kling_core::probe::Probed::Video(video) => {
            u32::try_from((video.duration.as_millis() + 500) / 1000).ok()
        }
        kling_core::probe::Probed::Image(_) => None,
    }
}

/// Validates `request` for `provider`, then prepares its create call
/// without sending it: the first half of what a test of an adapter against
/// the sandbox does (the `kling` facade's `Client` does the same for
/// programs).
///
/// ```
/// use kling_core::{Checked, EditRequest, Error, JobHandle, JobState, JobStatus, Media, Model, Task};
/// use kling_core::provider::{Capabilities, Offering, PreparedCall, Provider};
///
/// #[derive(Debug)]
/// struct Example;
/// const CAPS: Capabilities = Capabilities::new("example", &[Offering::new(Task::Edit, Model::O1, "e")]);
///
/// #[async_trait::async_trait]
/// impl Provider for Example {
///     fn capabilities(&self) -> &Capabilities { &CAPS }
///     fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error> {
///         let body = serde_json::json!({ "prompt": checked.request().prompt() });
///         Ok(PreparedCall::new("POST", "http://127.0.0.1:9/jobs".into(), body, CAPS.accept(checked)?.wire_model))
///     }
///     async fn submit(&self, _: &Checked) -> Result<JobHandle, Error> { Ok(JobHandle::new("example", "1")) }
///     async fn status(&self, _: &JobHandle) -> Result<JobStatus, Error> {
///         Ok(JobStatus::new(JobState::Queued, serde_json::Value::Null))
///     }
/// }
///
/// let request = EditRequest::new(Media::url("https://example.com/a.mp4"), "Snow").into();
/// assert_eq!(kling_sandbox::prepare(&Example, &request)?.body["prompt"], "Snow");
/// let broken = EditRequest::new(Media::url("https://example.com/a.mp4"), " ").into();
/// assert!(kling_sandbox::prepare(&Example, &broken).unwrap_err().is_invalid_request());
/// # Ok::<(), Error>(())
/// ```
///
/// # Errors
///
/// The broken rules, or the adapter's refusal.
pub fn prepare(
    provider: &dyn kling_core::provider::Provider,
    request: &kling_core::Request,
) -> Result<kling_core::provider::PreparedCall, kling_core::Error> {
    provider.prepare(&provider.capabilities().validate(request)?)
}

/// Validates `request` for `provider`, then submits it: the path every job
/// takes, for tests of an adapter against the sandbox.
///
/// # Errors
///
/// The broken rules, or the adapter's.
pub async fn submit(
    provider: &dyn kling_core::provider::Provider,
    request: &kling_core::Request,
) -> Result<kling_core::JobHandle, kling_core::Error> {
    provider
        .submit(&provider.capabilities().validate(request)?)
        .await
}
