//! JSON calls to a provider's API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kling_core::{Delivery, Error};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::clock::{Clock, TokioClock};
use crate::inline::InlineBody;
use crate::retry::RetryPolicy;
use crate::settings::ClientSettings;

/// The API's client: `settings`, following no redirect.
fn client_for(provider: &str, settings: &ClientSettings) -> Result<reqwest::Client, Error> {
    settings
        .client(reqwest::redirect::Policy::none())
        .map_err(|e| Error::Transport {
            provider: provider.to_owned(),
            delivery: Delivery::NotSent,
            attempt: None,
            source: Box::new(e),
        })
}

/// A client for one provider's API: its base URL and bearer key.
///
/// The key is sent on these requests only, never on downloads, and the
/// client follows no redirects, so the key cannot be carried to another
/// host. `Debug` shows `[REDACTED]` for it.
///
/// ```
/// use kling_http::{ApiClient, SecretString};
///
/// let client = ApiClient::new("shortapi", "https://api.shortapi.ai", Some(SecretString::from("sk-123")))?;
/// assert!(!format!("{client:?}").contains("sk-123"));
/// # Ok::<(), kling_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ApiClient {
    provider: &'static str,
    base_url: String,
    key: Option<SecretString>,
    scheme: KeyScheme,
    http: reqwest::Client,
    retry: RetryPolicy,
    request_timeout: Duration,
    clock: Arc<dyn Clock>,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("key", &self.key.as_ref().map(|_| "[REDACTED]"))
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// How long a request may take, its answer included, unless
    /// [`ApiClient::with_request_timeout`] says otherwise.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

    /// A client for `provider` at `base_url` (no trailing slash needed).
    ///
    /// The key travels in a header, so `base_url` must be `https`; plain
    /// `http` is accepted for loopback addresses only (the sandbox, a local
    /// proxy).
    ///
    /// ```
    /// use kling_http::ApiClient;
    ///
    /// assert!(ApiClient::new("shortapi", "http://127.0.0.1:8787/shortapi", None).is_ok());
    /// let err = ApiClient::new("shortapi", "http://api.example.com", None).unwrap_err();
    /// assert!(err.to_string().contains("use https"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for a base URL that is not `https` (or `http`
    /// on loopback); [`Error::InvalidKey`] for a key no HTTP header can
    /// carry (a line break or another control character), before anything
    /// is sent; [`Error::Transport`] when the HTTP
    /// client cannot be built (TLS setup).
    ///
    /// ```
    /// use kling_http::{ApiClient, SecretString};
    ///
    /// let key = Some(SecretString::from("sk-123\n"));
    /// let err = ApiClient::new("shortapi", "https://api.shortapi.ai", key).unwrap_err();
    /// assert!(matches!(err, kling_core::Error::InvalidKey { .. }));
    /// assert!(!err.to_string().contains("sk-123"));
    /// ```
    pub fn new(
        provider: &'static str,
        base_url: &str,
        key: Option<SecretString>,
    ) -> Result<Self, Error> {
        check_base_url(provider, base_url)?;
        if let Some(key) = &key {
            check_key(provider, key)?;
        }
        let http = client_for(provider, &ClientSettings::default())?;
        Ok(ApiClient {
            provider,
            base_url: base_url.trim_end_matches('/').to_owned(),
            key,
            scheme: KeyScheme::Bearer,
            http,
            retry: RetryPolicy::default(),
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            clock: Arc::new(TokioClock::new()),
            rng: Arc::new(Mutex::new(fastrand::Rng::new())),
        })
    }

    /// Makes requests with the caller's HTTP settings (a custom CA, a
    /// proxy), following no redirect unless `settings` is a client given
    /// as it is.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when the client cannot be built.
    pub fn with_settings(mut self, settings: &ClientSettings) -> Result<Self, Error> {
        self.http = client_for(self.provider, settings)?;
        Ok(self)
    }

    /// Sets how reads are retried.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the time source for retry waits.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Bounds each request, from sending to the last byte of the answer.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sends the key under `scheme` (`Authorization: Bearer KEY` unless
    /// told otherwise).
    ///
    /// ```
    /// use kling_http::{ApiClient, KeyScheme};
    ///
    /// let api = ApiClient::new("example", "https://api.example.com", Some("k-1".into()))?
    ///     .with_key_scheme(KeyScheme::Key);
    /// assert_eq!(api.key_scheme(), KeyScheme::Key);
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_key_scheme(mut self, scheme: KeyScheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// How the key is sent.
    pub fn key_scheme(&self) -> KeyScheme {
        self.scheme
    }

    /// The same client (key, settings, retry policy, timeout) for another
    /// of the provider's addresses, such as its storage service.
    ///
    /// ```
    /// use kling_http::ApiClient;
    ///
    /// let api = ApiClient::new("example", "https://queue.example.com", None)?;
    /// let storage = api.at("https://storage.example.com")?;
    /// assert_eq!(storage.url("/upload"), "https://storage.example.com/upload");
    /// assert!(api.at("http://storage.example.com").is_err());
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ApiClient::new`], for a base URL the key must not go to.
    pub fn at(&self, base_url: &str) -> Result<Self, Error> {
        check_base_url(self.provider, base_url)?;
        let mut moved = self.clone();
        base_url
            .trim_end_matches('/')
            .clone_into(&mut moved.base_url);
        Ok(moved)
    }

    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, Error> {
        let mut builder = self
            .http
            .request(method, self.url(path))
            .timeout(self.request_timeout);
        if let Some(key) = &self.key {
            builder = builder.header(
                AUTHORIZATION,
                authorization(self.scheme, self.provider, key)?,
            );
        }
        Ok(builder)
    }

    /// Starts a create of `model` at `path`, now.
    ///
    /// ```
    /// use kling_http::ApiClient;
    ///
    /// let api = ApiClient::new("oxen", "https://hub.oxen.ai", None)?;
    /// let attempt = api.attempt("/api/ai/queue", "kling-video-o3-omni");
    /// assert!(attempt.as_str().starts_with("POST https://hub.oxen.ai/api/ai/queue for kling-video-o3-omni at "));
    /// # Ok::<(), kling_core::Error>(())
    /// ```
    pub fn attempt(&self, path: &str, model: &str) -> Attempt {
        let at = SystemTime::now();
        Attempt {
            provider: self.provider,
            at,
            text: format!(
                "POST {} for {model} at {}",
                self.url(path),
                kling_core::job::rfc3339(at)
            ),
        }
    }

    /// Sends a create. It is never retried: when it fails after it may have
    /// reached the provider (a timeout, a connection closed after the body
    /// was written, a 5xx answer), the error is a
    /// [`Delivery::MaybeSent`] transport error carrying `attempt`, what
    /// identifies this try, because a paid job may exist.
    ///
    /// # Errors
    ///
    /// Transport errors as above; the provider's refusals as
    /// [`Error::Auth`], [`Error::RateLimited`] or [`Error::Rejected`].
    pub async fn create(
        &self,
        path: &str,
        body: &Value,
        attempt: &Attempt,
    ) -> Result<Value, Error> {
        let request = self.request(Method::POST, path)?.json(body);
        self.send_create(request, attempt, None).await
    }

    /// Sends a create whose body carries local files inline, encoded while
    /// it is sent (see [`crate::inline`]); otherwise as
    /// [`ApiClient::create`]. When reading a file fails midway the body is
    /// incomplete, so the provider cannot have accepted it: that error is
    /// [`Delivery::NotSent`].
    ///
    /// # Errors
    ///
    /// As [`ApiClient::create`].
    pub async fn create_inline(
        &self,
        path: &str,
        body: InlineBody,
        attempt: &Attempt,
    ) -> Result<Value, Error> {
        let failed = Arc::new(AtomicBool::new(false));
        let length = body.len();
        let request = self
            .request(Method::POST, path)?
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(
                body.into_stream(Arc::clone(&failed)),
            ));
        self.send_create(request, attempt, Some(failed)).await
    }

    async fn send_create(
        &self,
        request: RequestBuilder,
        attempt: &Attempt,
        body_failed: Option<Arc<AtomicBool>>,
    ) -> Result<Value, Error> {
        let attempt = attempt.as_str();
        let maybe_sent = |source: kling_core::BoxError| Error::Transport {
            provider: self.provider.to_owned(),
            delivery: Delivery::MaybeSent,
            attempt: Some(attempt.to_owned()),
            source,
        };
        let failed_here = || {
            body_failed
                .as_ref()
                .is_some_and(|f| f.load(Ordering::SeqCst))
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_connect() || e.is_builder() || failed_here() => {
                return Err(Error::Transport {
                    provider: self.provider.to_owned(),
                    delivery: Delivery::NotSent,
                    attempt: Some(attempt.to_owned()),
                    source: Box::new(e.without_url()),
                });
            }
            // The attempt names the URL; the error's own copy may carry a
            // query with a credential (a callback's token).
            Err(e) => return Err(maybe_sent(Box::new(e.without_url()))),
        };
        let status = response.status();
        if status.is_server_error() {
            let body = read_text(response).await;
            return Err(maybe_sent(
                format!("HTTP {status} answered the create: {}", excerpt(&body)).into(),
            ));
        }
        if !status.is_success() {
            let retry_after = retry_after(&response);
            let body = read_text(response).await;
            return Err(self.refusal(status, &body, retry_after));
        }
        // The job exists once the provider answered 2xx: losing the body
        // now loses its id.
        let bytes = read_capped(response)
            .await
            .map_err(|e| maybe_sent(e.into()))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            maybe_sent(
                format!(
                    "the create answer is not JSON ({e}): {}",
                    excerpt(&String::from_utf8_lossy(&bytes))
                )
                .into(),
            )
        })
    }

    /// A GET, retried on 429, 5xx and connection errors.
    ///
    /// # Errors
    ///
    /// The last error once retries are spent, or a refusal at once.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, Error> {
        self.idempotent(Method::GET, path, query, None).await
    }

    /// A DELETE, retried like [`ApiClient::get`].
    ///
    /// # Errors
    ///
    /// As [`ApiClient::get`].
    pub async fn delete(&self, path: &str) -> Result<Value, Error> {
        self.idempotent(Method::DELETE, path, &[], None).await
    }

    /// A PUT without a body (a cancel), retried like [`ApiClient::get`].
    ///
    /// # Errors
    ///
    /// As [`ApiClient::get`].
    pub async fn put(&self, path: &str) -> Result<Value, Error> {
        self.idempotent(Method::PUT, path, &[], None).await
    }

    /// A POST of `body` that creates nothing paid (it starts an upload, it
    /// asks a question), so it is retried like [`ApiClient::get`]. Never
    /// for a create: that is [`ApiClient::create`], sent once.
    ///
    /// # Errors
    ///
    /// As [`ApiClient::get`].
    pub async fn post_repeatable(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value, Error> {
        self.idempotent(Method::POST, path, query, Some(body)).await
    }

    /// Sends `body` (`len` bytes of `content_type`) to `url` with `method`
    /// (a PUT of a file or a part, the POST that completes a multipart
    /// upload): a presigned URL the provider handed out, sent without the
    /// key, since whoever holds the URL may write there and the key stays
    /// with the API's host. It is bounded by the request timeout plus a
    /// second per 256 KiB, and not retried (the body may be a stream).
    /// Returns the answer's body, up to 1 MiB. The error names the host
    /// and path only, never the URL's signed query.
    ///
    /// # Errors
    ///
    /// Why the upload failed: no connection, a refusal, a body cut short.
    pub async fn send_presigned(
        &self,
        method: Method,
        url: &str,
        content_type: &str,
        body: reqwest::Body,
        len: u64,
    ) -> Result<Vec<u8>, String> {
        let timeout = self.request_timeout + Duration::from_secs(len / (256 * 1024));
        let shown = format!("{method} {}", crate::redacted(url));
        let response = self
            .http
            .request(method, url)
            .timeout(timeout)
            .header(CONTENT_TYPE, content_type)
            .header(CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{shown}: {}", crate::describe(e)))?;
        let status = response.status();
        if status.is_success() {
            return read_capped(response)
                .await
                .map_err(|e| format!("{shown}: {e}"));
        }
        let body = read_text(response).await;
        Err(format!("{shown}: HTTP {status}: {}", short_excerpt(&body)))
    }

    /// GETs a public JSON document at `url` (a provider's published keys),
    /// without the key, once.
    ///
    /// # Errors
    ///
    /// Why it could not be read: no connection, not 2xx, not JSON, larger
    /// than 1 MiB.
    pub async fn get_public(&self, url: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(url)
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", crate::describe(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let bytes = read_capped(response)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not JSON ({e})"))
    }

    /// A GET whose answer is streamed, as for server-sent events; not
    /// retried (the caller decides what a dropped stream means).
    ///
    /// # Errors
    ///
    /// A transport error, or the provider's refusal.
    pub async fn open_stream(&self, path: &str) -> Result<Response, Error> {
        // No overall timeout: the stream stays open.
        let mut builder = self.http.get(self.url(path));
        if let Some(key) = &self.key {
            builder = builder.header(
                AUTHORIZATION,
                authorization(self.scheme, self.provider, key)?,
            );
        }
        let response = builder
            .header("Accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.transport(Delivery::NotSent, Box::new(e)))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            let status = response.status();
            let retry_after = retry_after(&response);
            let body = read_text(response).await;
            Err(self.refusal(status, &body, retry_after))
        }
    }

    /// Sends a request that is safe to repeat, retrying it on 429, 5xx,
    /// connection errors and success answers that are not JSON (an HTML
    /// page from a proxy says nothing about the job). Once retries are
    /// spent, a provider that kept failing is [`Error::Unavailable`] (a
    /// transient failure, never a refusal); a rate limit stays
    /// [`Error::RateLimited`] and a dropped connection [`Error::Transport`].
    async fn idempotent(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let mut retry = 0;
        loop {
            retry += 1;
            let last_try = retry >= self.retry.max_attempts;
            let mut request = self.request(method.clone(), path)?.query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let unavailable = |message: String| Error::Unavailable {
                provider: self.provider.to_owned(),
                request: format!("{method} {path}"),
                tries: retry,
                message,
            };
            let (error, retry_after) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(&response);
                    if status.is_success() {
                        match read_capped(response).await {
                            Ok(bytes) => match serde_json::from_slice(&bytes) {
                                Ok(value) => return Ok(value),
                                Err(e) => (
                                    unavailable(format!(
                                        "HTTP {status} with an answer that is not JSON ({e}): {}",
                                        short_excerpt(&String::from_utf8_lossy(&bytes))
                                    )),
                                    None,
                                ),
                            },
                            Err(e) => (self.transport(Delivery::MaybeSent, e.into()), None),
                        }
                    } else {
                        let body = read_text(response).await;
                        if status.is_server_error() {
                            let message =
                                provider_message(&body).unwrap_or_else(|| short_excerpt(&body));
                            (
                                unavailable(format!("HTTP {status}: {message}")),
                                retry_after,
                            )
                        } else {
                            let error = self.refusal(status, &body, retry_after);
                            if status != StatusCode::TOO_MANY_REQUESTS {
                                return Err(error);
                            }
                            (error, retry_after)
                        }
                    }
                }
                Err(e) => {
                    let delivery = if e.is_connect() {
                        Delivery::NotSent
                    } else {
                        Delivery::MaybeSent
                    };
                    (self.transport(delivery, Box::new(e)), None)
                }
            };
            if last_try {
                return Err(error);
            }
            let wait = {
                let mut rng = self
                    .rng
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                self.retry.delay(retry, retry_after, &mut rng)
            };
            tracing::debug!(
                provider = self.provider,
                request = %format_args!("{method} {path}"),
                attempt = retry,
                delay_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                reason = %error,
                "retrying"
            );
            self.clock.sleep(wait).await;
        }
    }

    fn transport(&self, delivery: Delivery, source: kling_core::BoxError) -> Error {
        Error::Transport {
            provider: self.provider.to_owned(),
            delivery,
            attempt: None,
            source,
        }
    }

    /// The error for a non-2xx answer, with the provider's message read
    /// from whichever of the three providers' error shapes the body has.
    fn refusal(&self, status: StatusCode, body: &str, retry_after: Option<Duration>) -> Error {
        let message = provider_message(body)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        let provider = self.provider.to_owned();
        match status.as_u16() {
            401 => Error::Auth {
                provider,
                status: 401,
                message,
            },
            429 => Error::RateLimited {
                provider,
                retry_after,
                concurrency: names_concurrency(body),
                message,
            },
            code => Error::Rejected {
                provider,
                status: Some(code),
                message,
                body: excerpt(body),
            },
        }
    }
}

/// One try at creating a job: when it was made and what identifies it, so
/// that an error after the request may have left can say which job may
/// exist. Made by [`ApiClient::attempt`].
#[derive(Clone, Debug)]
pub struct Attempt {
    provider: &'static str,
    at: SystemTime,
    text: String,
}

impl Attempt {
    /// When the create was sent: the job's creation time.
    pub fn at(&self) -> SystemTime {
        self.at
    }

    /// `POST URL for MODEL at TIME`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The error for a create answered in a way that cannot be read (no job
    /// id, not the provider's shape): the job may exist.
    pub fn unreadable(&self, message: String) -> Error {
        Error::Transport {
            provider: self.provider.to_owned(),
            delivery: Delivery::MaybeSent,
            attempt: Some(self.text.clone()),
            source: message.into(),
        }
    }
}

/// Whether `url`'s host is this machine: `localhost` or a loopback
/// address, where plain `http` never leaves the machine.
///
/// ```
/// let local = url::Url::parse("http://[::1]:8787/oxen").unwrap();
/// assert!(kling_http::is_loopback(&local));
/// assert!(!kling_http::is_loopback(&url::Url::parse("http://10.0.0.1").unwrap()));
/// ```
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// How a provider wants its key sent in the `Authorization` header.
///
/// ```
/// assert_eq!(kling_http::KeyScheme::Key.as_str(), "Key");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyScheme {
    /// `Authorization: Bearer KEY`.
    #[default]
    Bearer,
    /// `Authorization: Key KEY`.
    Key,
}

impl KeyScheme {
    /// The word before the key.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScheme::Bearer => "Bearer",
            KeyScheme::Key => "Key",
        }
    }
}

/// The `Authorization` header for `key`, marked sensitive, or why it
/// cannot be one.
fn authorization(
    scheme: KeyScheme,
    provider: &str,
    key: &SecretString,
) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(&format!("{} {}", scheme.as_str(), key.expose_secret()))
        .map_err(|_| Error::InvalidKey {
            provider: provider.to_owned(),
            problem: key_problem(key.expose_secret()),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Refuses a key no header can carry, saying why without showing it.
fn check_key(provider: &str, key: &SecretString) -> Result<(), Error> {
    authorization(KeyScheme::Bearer, provider, key).map(drop)
}

/// What makes `key` unusable in a header, in words that do not show it.
fn key_problem(key: &str) -> String {
    let position = |at: usize| key[..at].chars().count() + 1;
    match key
        .char_indices()
        .find(|(_, c)| c.is_control() && *c != '\t')
    {
        Some((at, '\n' | '\r')) => format!(
            "it holds a line break (character {} of {}); copy the key again without it",
            position(at),
            key.chars().count()
        ),
        Some((at, _)) => format!(
            "it holds a control character (character {} of {})",
            position(at),
            key.chars().count()
        ),
        None => "it holds characters an HTTP header cannot carry".to_owned(),
    }
}

/// Refuses a base URL the key must not be sent to: anything but `https`,
/// except `http` on a loopback address.
fn check_base_url(provider: &str, base_url: &str) -> Result<(), Error> {
    let refuse = |why: String| Error::Unsupported {
        provider: provider.to_owned(),
        task: None,
        model: None,
        feature: format!("the base URL {base_url:?}: {why}"),
    };
    let url = url::Url::parse(base_url).map_err(|e| refuse(format!("not a URL ({e})")))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(refuse(
            "the API key would travel unencrypted; use https (plain http is allowed for \
             loopback addresses only)"
                .to_owned(),
        )),
        other => Err(refuse(format!("the scheme {other:?} is not https"))),
    }
}

/// The largest answer read from a provider's API. Their answers are a
/// few hundred bytes; a larger one is broken or hostile, and is not
/// held in memory.
pub(crate) const MAX_ANSWER: usize = 1 << 20;

/// Reads an answer's body, up to 1 MiB: an answer of an API is a few
/// hundred bytes, and a larger one is broken or hostile, not held in
/// memory. The error says why the body was not read.
///
/// ```no_run
/// # async fn run(response: reqwest::Response) {
/// match kling_http::read_capped(response).await {
///     Ok(body) => println!("{} bytes", body.len()),
///     Err(why) => eprintln!("{why}"),
/// }
/// # }
/// ```
///
/// # Errors
///
/// When the body is larger than 1 MiB or is cut off.
pub async fn read_capped(response: Response) -> Result<Vec<u8>, String> {
    match crate::probe::read_at_most(response, MAX_ANSWER as u64).await {
        Ok(body) if body.more => Err(format!(
            "the answer is larger than {} KiB; it was not read",
            MAX_ANSWER >> 10
        )),
        Ok(body) => Ok(body.bytes),
        Err(e) => Err(format!("the answer was cut off: {}", crate::describe(e))),
    }
}

/// An error answer's body as text, up to [`MAX_ANSWER`]; what cannot be
/// read is left out (the status says enough).
async fn read_text(response: Response) -> String {
    read_capped(response)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The message in an error body: AI/ML API's and ShortAPI's `message`,
/// Oxen's `error.detail` or `status_message`, a `detail` string, or the
/// first of a list of validation errors under `detail` (`msg`).
pub(crate) fn provider_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    [
        value.get("message"),
        value.pointer("/error/detail"),
        value.pointer("/error/message"),
        value.get("status_message"),
        value.get("detail"),
        value.pointer("/detail/0/msg"),
    ]
    .into_iter()
    .flatten()
    .find_map(|m| m.as_str().map(str::to_owned))
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, std::time::SystemTime::now())
}

/// A `Retry-After` value at `now`: a number of seconds, or an HTTP date
/// (RFC 9110 10.2.3), a date already past meaning now.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// At most 200 characters of a body, for an error's one-line message.
fn short_excerpt(body: &str) -> String {
    match body.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

/// At most 2,000 characters of a body, for errors.
fn excerpt(body: &str) -> String {
    match body.char_indices().nth(2000) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

/// Whether a 429's body says the limit is on jobs at once: it speaks of
/// concurrency, or carries Kling's code for it (1303), as providers that
/// pass Kling's errors through do.
fn names_concurrency(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    lower.contains("concurren")
        || serde_json::from_str::<Value>(body).is_ok_and(|value| has_code_1303(&value, 0))
}

/// Whether `value` holds `"code": 1303` (number or text), looking a few
/// levels down.
fn has_code_1303(value: &Value, depth: u8) -> bool {
    match value {
        Value::Object(fields) => fields.iter().any(|(name, inner)| {
            (name == "code" && (inner == 1303 || inner == "1303"))
                || (depth < 3 && has_code_1303(inner, depth + 1))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_as_an_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_784_894_400); // 2026-07-24T12:00:00Z
        let secs = |value| parse_retry_after(value, now);
        assert_eq!(secs("7"), Some(Duration::from_secs(7)));
        assert_eq!(secs(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            secs("Fri, 24 Jul 2026 12:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        // A date already past: now.
        assert_eq!(secs("Fri, 24 Jul 2026 11:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(secs("soon"), None);
        assert_eq!(secs("-5"), None);
    }

    #[test]
    fn messages_are_read_from_each_providers_shape() {
        for (body, expected) in [
            (r#"{"code": 400, "message": "bad args"}"#, Some("bad args")),
            (
                r#"{"message": "video_url is required", "statusCode": 400}"#,
                Some("video_url is required"),
            ),
            (
                r#"{"error": {"type": "not_found", "detail": "no such generation"}, "status": "error"}"#,
                Some("no such generation"),
            ),
            (
                r#"{"detail": "Request not found"}"#,
                Some("Request not found"),
            ),
            (
                r#"{"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]}"#,
                Some("field required"),
            ),
            ("<html>502</html>", None),
        ] {
            assert_eq!(provider_message(body).as_deref(), expected, "{body}");
        }
    }

    #[test]
    fn a_key_no_header_can_carry_is_refused_without_showing_it() {
        for (key, says) in [
            ("sk-secret\n", "line break (character 10 of 10)"),
            ("sk-\rsecret", "line break (character 4 of 10)"),
            ("sk-\u{1b}secret", "control character (character 4 of 10)"),
        ] {
            let err = ApiClient::new(
                "shortapi",
                "https://api.shortapi.ai",
                Some(SecretString::from(key)),
            )
            .unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::InvalidKey { .. }), "{key:?}: {err:?}");
            assert!(text.contains(says), "{key:?}: {text}");
            assert!(!text.contains("secret") && !text.contains("cret"), "{text}");
        }
        // A key with a tab or spaces is sent as it is (and the http crate
        // lets non-ASCII bytes through).
        assert!(
            ApiClient::new(
                "shortapi",
                "https://api.shortapi.ai",
                Some(SecretString::from("sk 1\t2"))
            )
            .is_ok()
        );
    }

    #[test]
    fn a_429_naming_a_concurrency_limit_is_told_apart() {
        for body in [
            r#"{"message":"Concurrency limit exceeded","statusCode":429}"#,
            r#"{"code":1303,"message":"parallel task over resource pack limit"}"#,
            r#"{"error":{"code":"1303","message":"busy"}}"#,
            "too many concurrent tasks",
        ] {
            assert!(names_concurrency(body), "{body}");
        }
        for body in [
            r#"{"message":"Too many requests","statusCode":429}"#,
            r#"{"code":1302,"message":"rate limit"}"#,
            "",
            "not json",
        ] {
            assert!(!names_concurrency(body), "{body}");
        }
    }
}
