//! The sandbox's state: its clock, jobs, uploads, faults and counters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::faults::{FaultKind, Operation};
use crate::{Config, Provider};

/// The result served for a job with no video input to echo: a real 5 s,
/// 1280x720 MP4.
pub(crate) const SAMPLE_RESULT: &[u8] = include_bytes!("../assets/result.mp4");

/// Time as the sandbox sees it: real time plus whatever tests add.
#[derive(Debug)]
pub(crate) struct Clock {
    start: Instant,
    frozen: bool,
    offset_ms: AtomicU64,
}

impl Clock {
    pub(crate) fn new(frozen: bool) -> Self {
        Clock {
            start: Instant::now(),
            frozen,
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Time since the sandbox started.
    pub(crate) fn now(&self) -> Duration {
        let offset = Duration::from_millis(self.offset_ms.load(Ordering::SeqCst));
        if self.frozen {
            offset
        } else {
            self.start.elapsed() + offset
        }
    }

    pub(crate) fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Where a job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Queued,
    Running,
    Succeeded,
    Failed(String),
    Cancelled,
}

impl Phase {
    pub(crate) fn is_terminal(&self) -> bool {
        !matches!(self, Phase::Queued | Phase::Running)
    }
}

/// How far a job's announcements (events, callbacks) have gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Announced {
    Nothing,
    Start,
    End,
}

#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) provider: Provider,
    pub(crate) id: String,
    pub(crate) model: String,
    /// The id used in result URLs (provider ids may hold `:` and `/`).
    file_id: String,
    created_at: Duration,
    run_for: Duration,
    failure: Option<String>,
    cancelled: bool,
    result: Arc<[u8]>,
    pub(crate) callback_url: Option<String>,
    /// Seconds billed, for answers that carry an amount.
    pub(crate) seconds: u32,
    /// The create body, where the provider shows it again (Oxen's
    /// generation rows).
    body: Option<Value>,
    /// The order of creation, for listings: jobs made at one instant of a
    /// frozen clock still have an order.
    sequence: u64,
    announced: Announced,
    expire_first_url: bool,
    token: Option<u64>,
    expired_tokens: HashSet<u64>,
}

impl Job {
    pub(crate) fn phase(&self, now: Duration) -> Phase {
        if self.cancelled {
            return Phase::Cancelled;
        }
        let elapsed = now.saturating_sub(self.created_at);
        if elapsed >= self.run_for {
            match &self.failure {
                Some(reason) => Phase::Failed(reason.clone()),
                None => Phase::Succeeded,
            }
        } else if elapsed >= self.run_for / 4 {
            Phase::Running
        } else {
            Phase::Queued
        }
    }

    pub(crate) fn cancel(&mut self) {
        self.cancelled = true;
    }
}

/// What a new job is made of.
#[derive(Debug)]
pub(crate) struct NewJob {
    pub(crate) provider: Provider,
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) callback_url: Option<String>,
    /// A video input to echo back as the result, when one came inline or
    /// from an upload.
    pub(crate) echo: Option<Arc<[u8]>>,
    /// Set when the provider accepts the job but will fail it (Oxen checks
    /// parameters only when the job runs).
    pub(crate) failure: Option<String>,
    pub(crate) seconds: u32,
    /// The create body, for a provider that shows it again (Oxen merges an
    /// enqueue's parameters into its generation rows).
    pub(crate) body: Option<Value>,
}

/// A message on Oxen's event stream.
#[derive(Clone, Debug)]
pub(crate) struct StreamEvent {
    pub(crate) event: &'static str,
    pub(crate) data: String,
}

/// Counters per provider.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    creates: AtomicU64,
    status_queries: AtomicU64,
    cancels: AtomicU64,
    downloads: AtomicU64,
    downloads_with_auth: AtomicU64,
    rejected: AtomicU64,
    faults: AtomicU64,
    callbacks: AtomicU64,
    events: AtomicU64,
    subscriptions: AtomicU64,
    ranged_downloads: AtomicU64,
    lookups: AtomicU64,
    over_concurrency: AtomicU64,
}

/// What a counter counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Count {
    Create,
    Status,
    Cancel,
    Download,
    DownloadWithAuth,
    Rejected,
    Fault,
    Callback,
    Event,
    Subscription,
    RangedDownload,
    Lookup,
    OverConcurrency,
}

impl Counters {
    fn counter(&self, what: Count) -> &AtomicU64 {
        match what {
            Count::Create => &self.creates,
            Count::Status => &self.status_queries,
            Count::Cancel => &self.cancels,
            Count::Download => &self.downloads,
            Count::DownloadWithAuth => &self.downloads_with_auth,
            Count::Rejected => &self.rejected,
            Count::Fault => &self.faults,
            Count::Callback => &self.callbacks,
            Count::Event => &self.events,
            Count::Subscription => &self.subscriptions,
            Count::RangedDownload => &self.ranged_downloads,
            Count::Lookup => &self.lookups,
            Count::OverConcurrency => &self.over_concurrency,
        }
    }

    fn snapshot(&self) -> ProviderStats {
        let get = |what| self.counter(what).load(Ordering::SeqCst);
        ProviderStats {
            creates: get(Count::Create),
            status_queries: get(Count::Status),
            cancels: get(Count::Cancel),
            downloads: get(Count::Download),
            downloads_with_auth: get(Count::DownloadWithAuth),
            rejected: get(Count::Rejected),
            faults: get(Count::Fault),
            callbacks: get(Count::Callback),
            events: get(Count::Event),
            subscriptions: get(Count::Subscription),
            ranged_downloads: get(Count::RangedDownload),
            lookups: get(Count::Lookup),
            over_concurrency: get(Count::OverConcurrency),
        }
    }
}

/// What the sandbox has seen of one provider's protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ProviderStats {
    /// Create requests that reached a handler (accepted or rejected).
    pub creates: u64,
    /// Status queries.
    pub status_queries: u64,
    /// Cancel requests.
    pub cancels: u64,
    /// Result downloads.
    pub downloads: u64,
    /// Result downloads that carried an `Authorization` header: an API key
    /// sent to the result host. Should stay 0.
    pub downloads_with_auth: u64,
    /// Create bodies refused (schema or auth).
    pub rejected: u64,
    /// Faults injected.
    pub faults: u64,
    /// ShortAPI callbacks sent.
    pub callbacks: u64,
    /// Oxen events sent.
    pub events: u64,
    /// Oxen event streams opened.
    pub subscriptions: u64,
    /// Result downloads that asked for a `Range`: resumed ones.
    pub ranged_downloads: u64,
    /// Lookups among past jobs (Oxen's generation list and records).
    #[serde(default)]
    pub lookups: u64,
    /// Creates refused with a 429 because the provider's jobs at once
    /// were at [`Config::max_running`](crate::Config::max_running).
    #[serde(default)]
    pub over_concurrency: u64,
}

/// What the sandbox has seen, per provider: the body of
/// `GET /_sandbox/stats`, `{"shortapi": {…}, …, "uploads": N}`.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use kling_sandbox::{Provider, Sandbox};
///
/// let sandbox = Sandbox::start(Default::default()).await.unwrap();
/// let stats = sandbox.stats();
/// assert_eq!(stats["oxen"].creates, 0);
/// assert_eq!(stats.of(Provider::Oxen), stats["oxen"]);
/// # });
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Each provider's counters, by name.
    #[serde(flatten)]
    pub providers: BTreeMap<String, ProviderStats>,
    /// Files uploaded.
    pub uploads: u64,
}

impl Stats {
    /// The counters of one provider.
    pub fn of(&self, provider: Provider) -> ProviderStats {
        self[provider.as_str()]
    }
}

impl std::ops::Index<&str> for Stats {
    type Output = ProviderStats;

    /// The counters of the provider named `name`; zero for a provider the
    /// sandbox has no counters of.
    fn index(&self, name: &str) -> &ProviderStats {
        static NONE: ProviderStats = ProviderStats {
            creates: 0,
            status_queries: 0,
            cancels: 0,
            downloads: 0,
            downloads_with_auth: 0,
            rejected: 0,
            faults: 0,
            callbacks: 0,
            events: 0,
            subscriptions: 0,
            ranged_downloads: 0,
            lookups: 0,
            over_concurrency: 0,
        };
        self.providers.get(name).unwrap_or(&NONE)
    }
}

#[derive(Debug)]
struct Inner {
    rng: fastrand::Rng,
    fault_hits: Vec<u32>,
    jobs: HashMap<String, Job>,
    /// Jobs created so far.
    created: u64,
    /// Job id by file id.
    files: HashMap<String, String>,
    uploads: HashMap<String, Arc<[u8]>>,
    /// Uploads handed a presigned URL and not yet put, by id: the URL's
    /// token.
    reserved: HashMap<String, String>,
    /// Parts of reserved uploads sent in parts, by id and part number,
    /// with the etag each was answered with.
    parts: HashMap<String, Parts>,
}

/// The parts of one upload sent so far, by number: each with its etag.
type Parts = BTreeMap<u32, (Arc<[u8]>, String)>;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) clock: Clock,
    pub(crate) base_url: String,
    /// Wall-clock seconds since the Unix epoch when the sandbox started.
    pub(crate) started_unix: u64,
    inner: Mutex<Inner>,
    /// One set a provider, in the order of [`Provider::ALL`].
    counters: Vec<Counters>,
    uploads: AtomicU64,
    pub(crate) events: broadcast::Sender<StreamEvent>,
    /// Bumped to end every open event stream.
    pub(crate) cut_streams: tokio::sync::watch::Sender<u64>,
}

impl State {
    pub(crate) fn new(config: Config, base_url: String) -> Arc<Self> {
        let (events, _) = broadcast::channel(1024);
        let (cut_streams, _) = tokio::sync::watch::channel(0);
        Arc::new(State {
            clock: Clock::new(config.frozen_clock),
            inner: Mutex::new(Inner {
                rng: fastrand::Rng::with_seed(config.seed),
                fault_hits: vec![0; config.faults.len()],
                jobs: HashMap::new(),
                created: 0,
                files: HashMap::new(),
                uploads: HashMap::new(),
                reserved: HashMap::new(),
                parts: HashMap::new(),
            }),
            config,
            base_url,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            counters: Provider::ALL.iter().map(|_| Counters::default()).collect(),
            uploads: AtomicU64::new(0),
            events,
            cut_streams,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A handler that panicked leaves consistent data behind: every
        // change is made whole under the lock.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn count(&self, provider: Provider, what: Count) {
        self.counters[provider.index()]
            .counter(what)
            .fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            providers: Provider::ALL
                .iter()
                .map(|p| (p.as_str().to_owned(), self.counters[p.index()].snapshot()))
                .collect(),
            uploads: self.uploads.load(Ordering::SeqCst),
        }
    }

    /// Throws the dice for every fault that applies to this request, and
    /// returns the request faults that hit; job faults are returned by
    /// [`State::job_faults`] at create.
    pub(crate) fn request_faults(
        &self,
        provider: Provider,
        operation: Operation,
    ) -> Vec<FaultKind> {
        self.roll(provider, operation, false)
    }

    /// The job faults that hit a create.
    pub(crate) fn job_faults(&self, provider: Provider) -> Vec<FaultKind> {
        self.roll(provider, Operation::Create, true)
    }

    /// Throws the dice for the job faults (`jobs`) or the request faults
    /// that apply: each fault is rolled once per request, so that its
    /// `times` counts the requests it hit.
    fn roll(&self, provider: Provider, operation: Operation, jobs: bool) -> Vec<FaultKind> {
        let mut inner = self.lock();
        let Inner {
            rng, fault_hits, ..
        } = &mut *inner;
        let mut hits = Vec::new();
        for (fault, count) in self.config.faults.iter().zip(fault_hits.iter_mut()) {
            if fault.kind.is_job_fault() != jobs
                || !fault.applies(provider, operation)
                || fault.times.is_some_and(|max| *count >= max)
            {
                continue;
            }
            if rng.f64() < fault.probability {
                *count += 1;
                hits.push(fault.kind);
            }
        }
        drop(inner);
        for _ in &hits {
            self.count(provider, Count::Fault);
        }
        hits
    }

    /// A fresh id: `len` hex digits from the seeded generator.
    pub(crate) fn hex_id(&self, len: usize) -> String {
        let mut inner = self.lock();
        (0..len)
            .map(|_| char::from_digit(inner.rng.u32(0..16), 16).unwrap_or('0'))
            .collect()
    }

    /// A fresh UUID-shaped id (version 4 layout).
    pub(crate) fn uuid(&self) -> String {
        let hex = self.hex_id(32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )
    }

    pub(crate) fn create_job(&self, new: NewJob, faults: &[FaultKind]) {
        let failure = new.failure.or_else(|| {
            faults
                .contains(&FaultKind::FailJob)
                .then(|| "the sandbox was told to fail this job (fault `fail`)".to_owned())
        });
        let file_id = self.hex_id(16);
        let mut job = Job {
            provider: new.provider,
            id: new.id.clone(),
            model: new.model,
            file_id: file_id.clone(),
            created_at: self.clock.now(),
            run_for: self.config.job_duration,
            failure,
            cancelled: false,
            result: new.echo.unwrap_or_else(|| Arc::from(SAMPLE_RESULT)),
            callback_url: new.callback_url,
            seconds: new.seconds,
            body: new.body,
            sequence: 0,
            announced: Announced::Nothing,
            expire_first_url: faults.contains(&FaultKind::ExpireUrl),
            token: None,
            expired_tokens: HashSet::new(),
        };
        let mut inner = self.lock();
        inner.created += 1;
        job.sequence = inner.created;
        inner.files.insert(file_id, new.id.clone());
        inner.jobs.insert(new.id, job);
    }

    /// Runs `f` on the job `id` of `provider`, if there is one.
    pub(crate) fn with_job<T>(
        &self,
        provider: Provider,
        id: &str,
        f: impl FnOnce(&mut Job) -> T,
    ) -> Option<T> {
        let mut inner = self.lock();
        inner
            .jobs
            .get_mut(id)
            .filter(|job| job.provider == provider)
            .map(f)
    }

    /// The phase of a job, and its result URL once it has succeeded.
    pub(crate) fn job_view(&self, provider: Provider, id: &str) -> Option<JobView> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Inner { rng, jobs, .. } = &mut *inner;
        let job = jobs.get_mut(id).filter(|job| job.provider == provider)?;
        Some(self.view(job, now, rng))
    }

    /// How many of `provider`'s jobs are queued or running now.
    pub(crate) fn unfinished(&self, provider: Provider) -> usize {
        let now = self.clock.now();
        self.lock()
            .jobs
            .values()
            .filter(|job| job.provider == provider && !job.phase(now).is_terminal())
            .count()
    }

    /// The ids of `provider`'s jobs, oldest first.
    pub(crate) fn job_ids(&self, provider: Provider) -> Vec<String> {
        let inner = self.lock();
        let mut mine: Vec<&Job> = inner
            .jobs
            .values()
            .filter(|job| job.provider == provider)
            .collect();
        mine.sort_by_key(|job| (job.created_at, job.sequence));
        mine.into_iter().map(|job| job.id.clone()).collect()
    }

    /// Every job of `provider`, newest first, as status answers show them.
    pub(crate) fn job_views(&self, provider: Provider) -> Vec<JobView> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Inner { rng, jobs, .. } = &mut *inner;
        let mut mine: Vec<&mut Job> = jobs
            .values_mut()
            .filter(|job| job.provider == provider)
            .collect();
        mine.sort_by_key(|job| std::cmp::Reverse((job.created_at, job.sequence)));
        mine.into_iter()
            .map(|job| self.view(job, now, rng))
            .collect()
    }

    fn view(&self, job: &mut Job, now: Duration, rng: &mut fastrand::Rng) -> JobView {
        let phase = job.phase(now);
        let url = (phase == Phase::Succeeded).then(|| self.issue_url(job, rng));
        JobView {
            id: job.id.clone(),
            phase,
            url,
            model: job.model.clone(),
            created_at: job.created_at,
            run_for: job.run_for,
            seconds: job.seconds,
            body: job.body.clone(),
        }
    }

    /// A result URL for `job`. The first one is already expired when the
    /// job was created under the `expire` fault; asking again gives a
    /// fresh one.
    fn issue_url(&self, job: &mut Job, rng: &mut fastrand::Rng) -> String {
        let token = match job.token {
            Some(token) if !job.expired_tokens.contains(&token) => token,
            previous => {
                let token = rng.u64(..);
                if previous.is_none() && job.expire_first_url {
                    job.expired_tokens.insert(token);
                }
                job.token = Some(token);
                token
            }
        };
        format!("{}/files/{}/{token:016x}.mp4", self.base_url, job.file_id)
    }

    /// What a result URL serves; `None` when it names nothing.
    pub(crate) fn result_file(&self, file_id: &str, token: &str) -> Option<ResultFile> {
        let inner = self.lock();
        let job = inner.jobs.get(inner.files.get(file_id)?)?;
        let token = u64::from_str_radix(token.strip_suffix(".mp4")?, 16).ok()?;
        if job.token != Some(token) {
            return None;
        }
        if job.expired_tokens.contains(&token) {
            return Some(ResultFile::Expired(job.provider));
        }
        Some(ResultFile::Ready(job.provider, Arc::clone(&job.result)))
    }

    pub(crate) fn add_upload(&self, bytes: Arc<[u8]>) -> String {
        let id = self.hex_id(24);
        self.lock().uploads.insert(id.clone(), bytes);
        self.uploads.fetch_add(1, Ordering::SeqCst);
        self.upload_url(&id)
    }

    /// An upload to come by a presigned PUT: its id and the URL's token.
    /// The file is served at [`State::upload_url`] once put.
    pub(crate) fn reserve_upload(&self) -> (String, String) {
        let (id, token) = (self.hex_id(24), self.hex_id(32));
        self.lock().reserved.insert(id.clone(), token.clone());
        (id, token)
    }

    /// Puts the bytes of a reserved upload, when `token` is its URL's.
    pub(crate) fn fill_upload(&self, id: &str, token: &str, bytes: Arc<[u8]>) -> bool {
        let mut inner = self.lock();
        if inner.reserved.get(id).is_none_or(|t| t != token) {
            return false;
        }
        inner.reserved.remove(id);
        inner.uploads.insert(id.to_owned(), bytes);
        drop(inner);
        self.uploads.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Keeps part `number` of a reserved upload, when `token` is its
    /// URL's; the etag it is answered with.
    pub(crate) fn add_part(
        &self,
        id: &str,
        token: &str,
        number: u32,
        bytes: Arc<[u8]>,
    ) -> Option<String> {
        let mut inner = self.lock();
        if inner.reserved.get(id).is_none_or(|t| t != token) {
            return None;
        }
        let etag = format!("\"{number}-{}\"", bytes.len());
        inner
            .parts
            .entry(id.to_owned())
            .or_default()
            .insert(number, (bytes, etag.clone()));
        Some(etag)
    }

    /// Puts a reserved upload together from the parts `listed` (number and
    /// etag, in order), each as it was answered.
    pub(crate) fn complete_parts(
        &self,
        id: &str,
        token: &str,
        listed: &[(u32, String)],
    ) -> Result<(), String> {
        let whole = {
            let inner = self.lock();
            if inner.reserved.get(id).is_none_or(|t| t != token) {
                return Err("the signature does not match".to_owned());
            }
            let kept = inner.parts.get(id).ok_or("no parts were sent")?;
            if listed.is_empty() || listed.len() != kept.len() {
                return Err(format!(
                    "{} parts listed, {} sent",
                    listed.len(),
                    kept.len()
                ));
            }
            let mut whole = Vec::new();
            for (number, etag) in listed {
                match kept.get(number) {
                    Some((bytes, sent)) if sent == etag => whole.extend_from_slice(bytes),
                    _ => return Err(format!("part {number} with etag {etag} was not sent")),
                }
            }
            whole
        };
        self.lock().parts.remove(id);
        if self.fill_upload(id, token, Arc::from(whole)) {
            Ok(())
        } else {
            Err("the upload was completed already".to_owned())
        }
    }

    /// Where an upload is served.
    pub(crate) fn upload_url(&self, id: &str) -> String {
        format!("{}/uploads/{id}", self.base_url)
    }

    /// Where a job is, without handing out a result URL (for answers that
    /// do not carry one).
    pub(crate) fn job_phase(&self, provider: Provider, id: &str) -> Option<Phase> {
        let now = self.clock.now();
        self.with_job(provider, id, |job| job.phase(now))
    }

    pub(crate) fn upload(&self, id: &str) -> Option<Arc<[u8]>> {
        self.lock().uploads.get(id).cloned()
    }

    /// The bytes of a video input to echo: an upload to this sandbox or a
    /// `data:` URI.
    pub(crate) fn echo_of(&self, input: &str) -> Option<Arc<[u8]>> {
        if let Some(rest) = input.strip_prefix("data:") {
            let (_, payload) = rest.split_once(";base64,")?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()?;
            return Some(bytes.into());
        }
        let id = input.strip_prefix(&format!("{}/uploads/", self.base_url))?;
        self.upload(id)
    }

    /// Jobs whose start or end has not been announced yet, marked as
    /// announced: what the ticker sends on.
    pub(crate) fn due_announcements(&self) -> Vec<Announcement> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Inner { rng, jobs, .. } = &mut *inner;
        let mut due = Vec::new();
        for job in jobs.values_mut() {
            let phase = job.phase(now);
            if phase == Phase::Cancelled {
                continue;
            }
            if job.announced < Announced::Start && phase != Phase::Queued {
                job.announced = Announced::Start;
                due.push(Announcement {
                    provider: job.provider,
                    id: job.id.clone(),
                    phase: Phase::Running,
                    url: None,
                    callback_url: None,
                });
            }
            if job.announced < Announced::End && phase.is_terminal() {
                job.announced = Announced::End;
                // A URL is handed out only where it is delivered (an
                // event stream, a callback): an `expire` fault spends
                // the first URL on whoever receives it.
                let delivered =
                    job.provider.protocol().pushes_every_end || job.callback_url.is_some();
                let url =
                    (phase == Phase::Succeeded && delivered).then(|| self.issue_url(job, rng));
                due.push(Announcement {
                    provider: job.provider,
                    id: job.id.clone(),
                    phase,
                    url,
                    callback_url: job.callback_url.clone(),
                });
            }
        }
        due
    }
}

/// What a result URL serves.
#[derive(Debug)]
pub(crate) enum ResultFile {
    /// The job's result.
    Ready(Provider, Arc<[u8]>),
    /// Nothing: the URL has expired.
    Expired(Provider),
}

/// A job as a status answer shows it.
#[derive(Debug)]
pub(crate) struct JobView {
    pub(crate) id: String,
    pub(crate) phase: Phase,
    pub(crate) url: Option<String>,
    pub(crate) model: String,
    pub(crate) created_at: Duration,
    pub(crate) run_for: Duration,
    pub(crate) seconds: u32,
    pub(crate) body: Option<Value>,
}

/// A change of phase to announce (Oxen event, ShortAPI callback).
#[derive(Debug)]
pub(crate) struct Announcement {
    pub(crate) provider: Provider,
    pub(crate) id: String,
    pub(crate) phase: Phase,
    pub(crate) url: Option<String>,
    pub(crate) callback_url: Option<String>,
}

/// Whether a fault list holds a request fault that answers instead of the
/// handler, and which.
pub(crate) fn answering_fault(faults: &[FaultKind]) -> Option<FaultKind> {
    faults.iter().copied().find(|k| {
        matches!(
            k,
            FaultKind::RateLimit | FaultKind::ServerError(_) | FaultKind::Drop
        )
    })
}

/// The delay a `slow` fault adds, if any hit.
pub(crate) fn delay(faults: &[FaultKind]) -> Option<Duration> {
    faults.iter().find_map(|k| match k {
        FaultKind::Slow(d) => Some(*d),
        _ => None,
    })
}
