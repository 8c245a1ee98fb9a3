//! Receiving providers' calls back about their jobs (ShortAPI's
//! `callback_url`): a push source that ends a wait as soon as a job ends,
//! instead of at the next poll.
//!
//! A [`CallbackReceiver`] hands each create a URL of its own, with an
//! unguessable token in its query, and wakes the wait for that job when
//! the URL is called. What the call says is never believed: it only makes
//! the wait ask the job's status at once, and that one answer is what
//! counts. A call with an unknown token, a call repeated while the wait
//! asks, and a call replayed after the wait ended change nothing. Each
//! call taken costs one status query, so only the provider, which alone
//! holds the token, can cause them.
//!
//! Mount [`CallbackReceiver::router`] in the program's own axum server
//! (feature `callbacks`), or call [`CallbackReceiver::receive`] from any
//! other HTTP server:
//!
//! ```no_run
//! # #[cfg(feature = "callbacks")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kling::callback::CallbackReceiver;
//! use kling::Client;
//!
//! // The address the provider reaches, with the prefix the router is
//! // mounted under.
//! let receiver = CallbackReceiver::new("https://jobs.example.com/kling")?;
//! let app = axum::Router::new().nest("/kling", receiver.router());
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! let provider = kling::shortapi::ShortApi::new(std::env::var("SHORTAPI_KEY")?.into())?;
//! let client = Client::new(provider).with_callbacks(receiver);
//! // client.submit(…) now asks ShortAPI to call back; client.wait(…) ends
//! // when it does.
//! # Ok(())
//! # }
//! ```
//!
//! Other providers' webhooks join through the same door: a route per
//! provider name, and a ticket per create. A provider that signs its calls
//! gives a [`CallbackVerifier`] ([`CallbackReceiver::with_verifier`]): its
//! calls are then taken only with a valid signature.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use kling_core::{Error, JobHandle};
use tokio::sync::watch;

/// The token's length in bytes (256 bits), written as hex in the URL.
const TOKEN_BYTES: usize = 32;

/// How many tickets stay open at once. A ticket is forgotten when its
/// job's wait ends; jobs created and never waited for here (`--no-wait`,
/// a create whose answer was lost) leave theirs open, the oldest of which
/// go first beyond this many.
const OPEN_AT_MOST: usize = 65_536;

/// The largest call body the router reads (to check a signature).
#[cfg(feature = "callbacks")]
const CALL_BODY_LIMIT: usize = 256 * 1024;

/// How many ended jobs' tokens are remembered, so that a provider
/// repeating its call after the wait ended is answered 200 (it stops)
/// rather than 404 (it may retry).
const ENDED_REMEMBERED: usize = 4096;

/// Receives providers' calls back about jobs, and wakes the waits for
/// them. Cloning it shares it.
///
/// ```
/// use kling::callback::{CallbackReceiver, Received};
///
/// let receiver = CallbackReceiver::new("http://127.0.0.1:8088/callbacks")?;
/// assert_eq!(receiver.public_url(), "http://127.0.0.1:8088/callbacks");
/// // A token it never handed out is refused, whatever the body says.
/// assert_eq!(receiver.receive("shortapi", "0123abcd"), Received::Unknown);
/// # Ok::<(), kling::Error>(())
/// ```
#[derive(Clone)]
pub struct CallbackReceiver {
    inner: Arc<Inner>,
}

struct Inner {
    public_url: String,
    tickets: Mutex<Tickets>,
    /// Per provider, what checks its calls' signatures.
    verifiers: Mutex<HashMap<String, Arc<dyn CallbackVerifier>>>,
}

/// Checks that a call claiming to be a provider's is its, for providers
/// that sign their calls. A provider without one is trusted on the token
/// alone (ShortAPI signs nothing).
///
/// ```
/// use kling::callback::{CallbackReceiver, CallbackVerifier, Received};
/// use reqwest::header::HeaderMap;
///
/// /// Takes calls whose `x-signature` is the body's length (a stand-in
/// /// for a real signature check).
/// struct Length;
///
/// #[async_trait::async_trait]
/// impl CallbackVerifier for Length {
///     async fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
///         let signed = headers.get("x-signature").and_then(|v| v.to_str().ok());
///         (signed == Some(body.len().to_string().as_str()))
///             .then_some(())
///             .ok_or_else(|| "no valid x-signature".to_owned())
///     }
/// }
///
/// let receiver = CallbackReceiver::new("http://127.0.0.1:8088")?
///     .with_verifier("signing", std::sync::Arc::new(Length));
/// // Unsigned, its calls are refused before their token is looked at.
/// assert_eq!(receiver.receive("signing", "0123"), Received::Unverified);
/// # Ok::<(), kling::Error>(())
/// ```
pub use kling_core::provider::CallbackVerifier;

#[derive(Default)]
struct Tickets {
    by_token: HashMap<String, Ticket>,
    /// `(provider, job id)` to the token of its create.
    by_job: HashMap<(String, String), String>,
    /// Open tokens, oldest first (some may be closed since).
    opened: VecDeque<String>,
    /// Tokens of jobs whose wait ended, with their provider, and their
    /// order, oldest first.
    ended: HashMap<String, &'static str>,
    ended_order: VecDeque<String>,
}

struct Ticket {
    provider: &'static str,
    job: Option<(String, String)>,
    /// When the last call taken arrived.
    arrived: Option<SystemTime>,
    /// Whether a call waits for the wait to ask the status; waits watch
    /// it.
    pending: watch::Sender<bool>,
}

impl Tickets {
    fn of_job(&self, job: &JobHandle) -> Option<(&String, &Ticket)> {
        let token = self.by_job.get(&(job.provider.clone(), job.id.clone()))?;
        Some((token, self.by_token.get(token)?))
    }

    /// Removes a ticket, and its job's entry.
    fn remove(&mut self, token: &str) -> Option<Ticket> {
        let ticket = self.by_token.remove(token)?;
        if let Some(key) = &ticket.job {
            self.by_job.remove(key);
        }
        Some(ticket)
    }

    /// Adds a ticket, forgetting the oldest open one beyond
    /// [`OPEN_AT_MOST`].
    fn insert(&mut self, token: String, ticket: Ticket) {
        while self.by_token.len() >= OPEN_AT_MOST {
            let Some(oldest) = self.opened.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        // Tokens closed since they were opened leave stale entries here:
        // drop them when they outnumber the open tickets.
        if self.opened.len() > 2 * self.by_token.len() + 64 {
            let open = &self.by_token;
            self.opened.retain(|t| open.contains_key(t));
        }
        self.opened.push_back(token.clone());
        self.by_token.insert(token, ticket);
    }

    /// Remembers an ended job's token for a while.
    fn ended(&mut self, token: String, provider: &'static str) {
        if self.ended_order.len() == ENDED_REMEMBERED
            && let Some(oldest) = self.ended_order.pop_front()
        {
            self.ended.remove(&oldest);
        }
        self.ended_order.push_back(token.clone());
        self.ended.insert(token, provider);
    }
}

impl fmt::Debug for CallbackReceiver {
    /// The public URL and how many tickets are open; never a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackReceiver")
            .field("public_url", &self.inner.public_url)
            .field("open", &self.lock().by_token.len())
            .finish()
    }
}

/// What [`CallbackReceiver::receive`] made of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// The first call for a job still waited for: its wait asks the
    /// status now.
    Accepted,
    /// A job already called back about, whose wait is asking now or has
    /// ended: ignored.
    Duplicate,
    /// No job has this token (never handed out, another provider's, or
    /// ended long ago): ignored.
    Unknown,
    /// The provider signs its calls and this one's signature is missing
    /// or wrong: ignored.
    Unverified,
}

impl Received {
    /// The HTTP status to answer with: 200 for what was taken (a duplicate
    /// too, so the provider stops retrying), 404 for an unknown token, 401
    /// for a signature that does not hold.
    ///
    /// ```
    /// assert_eq!(kling::callback::Received::Duplicate.http_status(), 200);
    /// assert_eq!(kling::callback::Received::Unknown.http_status(), 404);
    /// ```
    pub fn http_status(self) -> u16 {
        match self {
            Received::Accepted | Received::Duplicate => 200,
            Received::Unknown => 404,
            Received::Unverified => 401,
        }
    }
}

/// A callback URL handed to one create. No `Debug`: the token is the
/// call's only credential.
pub(crate) struct Opened {
    pub(crate) token: String,
    pub(crate) url: String,
}

impl CallbackReceiver {
    /// A receiver reached at `public_url`: where the provider sends its
    /// calls, with the prefix [`CallbackReceiver::router`] is mounted
    /// under. Each create gets `{public_url}/{provider}?token=…`.
    ///
    /// ```
    /// use kling::callback::CallbackReceiver;
    ///
    /// assert!(CallbackReceiver::new("https://jobs.example.com/kling/").is_ok());
    /// let err = CallbackReceiver::new("jobs.example.com").unwrap_err();
    /// assert!(err.to_string().contains("http or https"), "{err}");
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for a URL that is not absolute `http` or
    /// `https`, or that has a query or a fragment.
    pub fn new(public_url: &str) -> Result<Self, Error> {
        let refuse = |why: &str| {
            Error::unsupported(
                "the callback receiver",
                format!("{public_url:?} as its public URL: {why}"),
            )
        };
        let parsed = url::Url::parse(public_url)
            .map_err(|e| refuse(&format!("{e}; give an http or https URL")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(refuse("give an http or https URL with a host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(refuse("it may not have a query or a fragment"));
        }
        Ok(CallbackReceiver {
            inner: Arc::new(Inner {
                public_url: public_url.trim_end_matches('/').to_owned(),
                tickets: Mutex::new(Tickets::default()),
                verifiers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Takes `provider`'s calls only when `verifier` finds them signed.
    #[must_use]
    pub fn with_verifier(self, provider: &str, verifier: Arc<dyn CallbackVerifier>) -> Self {
        self.inner
            .verifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(provider.to_owned(), verifier);
        self
    }

    /// Takes `provider`'s calls only when `verifier` finds them signed,
    /// unless a verifier was set for it already: the provider's own check,
    /// added when a client for it takes this receiver.
    pub(crate) fn verify_unless_set(&self, provider: &str, verifier: Arc<dyn CallbackVerifier>) {
        self.inner
            .verifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(provider.to_owned())
            .or_insert(verifier);
    }

    fn verifier(&self, provider: &str) -> Option<Arc<dyn CallbackVerifier>> {
        self.inner
            .verifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .cloned()
    }

    /// Where providers reach it.
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tickets> {
        self.inner
            .tickets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a call to `{public_url}/{provider}?token={token}`. A call
    /// for a job whose wait is not already about to ask its status wakes
    /// the wait, which asks; any other (a repeat while it asks, a replay
    /// after it ended) changes nothing. The call's body is not needed,
    /// since the wait asks the provider itself.
    ///
    /// ```
    /// use kling::callback::{CallbackReceiver, Received};
    ///
    /// let receiver = CallbackReceiver::new("http://127.0.0.1:8088")?;
    /// assert_eq!(receiver.receive("shortapi", ""), Received::Unknown);
    /// # Ok::<(), kling::Error>(())
    /// ```
    pub fn receive(&self, provider: &str, token: &str) -> Received {
        if self.verifier(provider).is_some() {
            tracing::warn!(provider, "a callback without its signature was refused");
            return Received::Unverified;
        }
        self.take(provider, token)
    }

    /// Takes a call with its headers and body, for a provider that signs
    /// its calls ([`CallbackReceiver::with_verifier`]): refused as
    /// [`Received::Unverified`] unless the signature holds, then as
    /// [`CallbackReceiver::receive`]. The check may fetch the provider's
    /// published keys.
    pub async fn receive_call(
        &self,
        provider: &str,
        token: &str,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Received {
        if let Some(verifier) = self.verifier(provider)
            && let Err(why) = verifier.verify(headers, body).await
        {
            tracing::warn!(
                provider,
                why,
                "a callback without a valid signature was refused"
            );
            return Received::Unverified;
        }
        self.take(provider, token)
    }

    /// Takes a call that passed its provider's check, if any.
    fn take(&self, provider: &str, token: &str) -> Received {
        let mut tickets = self.lock();
        let Some(ticket) = tickets.by_token.get_mut(token) else {
            return match tickets.ended.get(token) {
                Some(ended) if *ended == provider => Received::Duplicate,
                _ => Received::Unknown,
            };
        };
        if ticket.provider != provider {
            return Received::Unknown;
        }
        let first = ticket
            .pending
            .send_if_modified(|pending| !std::mem::replace(pending, true));
        if !first {
            tracing::debug!(provider, "repeated callback ignored");
            return Received::Duplicate;
        }
        ticket.arrived = Some(SystemTime::now());
        if let Some((_, job)) = &ticket.job {
            tracing::info!(provider, job = job.as_str(), "callback received");
        } else {
            // The create's answer was lost, but the provider made the job:
            // it exists, and may be paid for.
            tracing::warn!(
                provider,
                "a callback came for a create whose answer was lost or has not come yet: \
                 the job exists at the provider"
            );
        }
        Received::Accepted
    }

    /// `{public_url}/{provider}?token={token}`.
    pub(crate) fn url_for(&self, provider: &str, token: &str) -> String {
        format!("{}/{provider}?token={token}", self.inner.public_url)
    }

    /// A fresh URL for one create on `provider`.
    pub(crate) fn open(&self, provider: &'static str) -> Result<Opened, Error> {
        let mut bytes = [0_u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::unsupported(
                "the callback receiver",
                format!("a callback token without the system's random numbers ({e})"),
            )
        })?;
        let token = kling_core::lower_hex(&bytes);
        let url = self.url_for(provider, &token);
        let (pending, _) = watch::channel(false);
        let ticket = Ticket {
            provider,
            job: None,
            arrived: None,
            pending,
        };
        self.lock().insert(token.clone(), ticket);
        Ok(Opened { token, url })
    }

    /// The create sent with `token` made `job`.
    pub(crate) fn bind(&self, token: &str, job: &JobHandle) {
        let mut tickets = self.lock();
        let key = (job.provider.clone(), job.id.clone());
        if let Some(ticket) = tickets.by_token.get_mut(token) {
            ticket.job = Some(key.clone());
            tickets.by_job.insert(key, token.to_owned());
        }
    }

    /// Forgets a ticket whose create made no job: later calls to it are
    /// unknown.
    pub(crate) fn close(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Forgets `job`'s ticket once its wait has ended, however it ended; a
    /// call repeated later is a duplicate for a while, then unknown.
    pub(crate) fn finish(&self, job: &JobHandle) {
        let mut tickets = self.lock();
        let Some(token) = tickets.of_job(job).map(|(token, _)| token.clone()) else {
            return;
        };
        if let Some(ticket) = tickets.remove(&token) {
            tickets.ended(token, ticket.provider);
        }
    }

    /// Takes the next call about `job` as news: the wait is about to ask
    /// the status the last call made it ask.
    pub(crate) fn rearm(&self, job: &JobHandle) {
        if let Some((_, ticket)) = self.lock().of_job(job) {
            ticket.pending.send_replace(false);
        }
    }

    /// When the last call about `job` that was taken arrived, while its
    /// wait goes on (or until it ended).
    pub fn arrived(&self, job: &JobHandle) -> Option<SystemTime> {
        self.lock().of_job(job)?.1.arrived
    }

    /// Resolves when a call about `job` is taken and not yet answered by
    /// a status query (at once when one is); `None` when `job` has no
    /// ticket here.
    pub(crate) fn arrival(&self, job: &JobHandle) -> Option<impl Future<Output = ()> + use<>> {
        let mut pending = self.lock().of_job(job)?.1.pending.subscribe();
        Some(async move {
            // An error means the ticket was closed: no call will come.
            if pending.wait_for(|pending| *pending).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }

    /// An axum router taking `POST /{provider}?token=…`: mount it (nest
    /// it) at the path of [`CallbackReceiver::public_url`]. A body is read
    /// (up to 256 KiB) only to check a signature; a missing or unknown
    /// token is a 404, a signature that does not hold a 401.
    #[cfg(feature = "callbacks")]
    pub fn router(&self) -> axum::Router {
        use axum::body::Bytes;
        use axum::extract::{DefaultBodyLimit, Path, Query, State};
        use axum::http::{HeaderMap, StatusCode};

        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
        }

        async fn take(
            State(this): State<CallbackReceiver>,
            Path(provider): Path<String>,
            Query(query): Query<Token>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let received = this
                .receive_call(
                    &provider,
                    query.token.as_deref().unwrap_or_default(),
                    &headers,
                    &body,
                )
                .await;
            StatusCode::from_u16(received.http_status()).unwrap_or(StatusCode::NOT_FOUND)
        }

        axum::Router::new()
            .route("/{provider}", axum::routing::post(take))
            .layer(DefaultBodyLimit::max(CALL_BODY_LIMIT))
            .with_state(self.clone())
    }

    /// Serves [`CallbackReceiver::router`] on `listener`, under the path
    /// of [`CallbackReceiver::public_url`], until the task is dropped: for
    /// programs without a server of their own (the CLI's
    /// `--callback-listen`).
    ///
    /// # Errors
    ///
    /// The server's I/O errors.
    #[cfg(feature = "callbacks")]
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let path = url::Url::parse(&self.inner.public_url)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let router = if path.is_empty() {
            self.router()
        } else {
            axum::Router::new().nest(&path, self.router())
        };
        axum::serve(listener, router).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_tickets_are_bounded_the_oldest_going_first() {
        let receiver = CallbackReceiver::new("http://127.0.0.1:9").unwrap();
        let first = receiver.open("shortapi").unwrap();
        let mut last = None;
        for _ in 0..OPEN_AT_MOST {
            last = Some(receiver.open("shortapi").unwrap());
        }
        assert_eq!(receiver.lock().by_token.len(), OPEN_AT_MOST);
        assert!(receiver.lock().opened.len() <= 2 * OPEN_AT_MOST + 64);
        assert_eq!(
            receiver.receive("shortapi", &first.token),
            Received::Unknown
        );
        let last = last.unwrap();
        assert_eq!(
            receiver.receive("shortapi", &last.token),
            Received::Accepted
        );
        assert_eq!(
            receiver.receive("shortapi", &last.token),
            Received::Duplicate
        );
        // Another provider's route never takes it.
        assert_eq!(receiver.receive("oxen", &last.token), Received::Unknown);
    }

    #[test]
    fn ended_tokens_are_remembered_for_a_while_then_unknown() {
        let receiver = CallbackReceiver::new("http://127.0.0.1:9").unwrap();
        let mut tokens = Vec::new();
        for id in 0..=ENDED_REMEMBERED {
            let opened = receiver.open("shortapi").unwrap();
            let job = JobHandle::new("shortapi", id.to_string());
            receiver.bind(&opened.token, &job);
            receiver.finish(&job);
            tokens.push(opened.token);
        }
        assert_eq!(receiver.receive("shortapi", &tokens[0]), Received::Unknown);
        assert_eq!(
            receiver.receive("shortapi", &tokens[1]),
            Received::Duplicate
        );
        assert_eq!(receiver.lock().ended.len(), ENDED_REMEMBERED);
        assert!(receiver.lock().by_job.is_empty());
    }
}
