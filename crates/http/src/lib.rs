//! HTTP plumbing shared by the kling-rs provider adapters.
//!
//! - [`ApiClient`]: JSON calls to one provider with its bearer key (held as
//!   a [`SecretString`], never printed). Status, cancel and other reads are
//!   retried on 429 (honouring `Retry-After`), 5xx and connection errors
//!   with jittered exponential backoff; a create is sent exactly once and,
//!   when it may have reached the provider, fails with an error that says so
//!   ([`Delivery::MaybeSent`](kling_core::Delivery::MaybeSent)).
//! - [`download_with_options`] (and [`download`]): streams a result to
//!   `FILE.part` under an exclusive lock, resumes with `Range` after a
//!   drop, ends a download that stalls or passes its deadline
//!   ([`DownloadOptions`]), and renames into place only a result whose
//!   length is the one announced and that the probe reads as a video. It
//!   never sends the API key: result URLs belong to other hosts.
//! - [`inline`]: JSON bodies that carry local files as `data:` URIs,
//!   base64-encoded while they are sent, in constant memory.
//! - [`sse`]: reads server-sent events.
//! - [`Clock`]: the time source every wait goes through, so tests run on
//!   virtual time.
//!
//! TLS: the `rustls` feature (default) or `native-tls`.

#![deny(missing_docs)]

mod api;
mod body;
mod clock;
mod descriptor;
mod download;
pub mod inline;
pub mod probe;
mod retry;
mod settings;
pub mod sse;

pub use api::{ApiClient, Attempt, KeyScheme, is_loopback, read_capped};
pub use body::file_body;
pub use clock::{Clock, TokioClock};
pub use descriptor::{Build, Descriptor};
pub use download::{
    DownloadError, DownloadOptions, Progress, download, download_with_options,
    download_with_progress, part_path,
};
pub use retry::RetryPolicy;
pub use secrecy::{ExposeSecret, SecretString};
pub use settings::ClientSettings;

/// A `reqwest` client builder with this crate's TLS setup: with the
/// `rustls` feature it installs the ring crypto provider first, which
/// reqwest needs before any client is built. Build every `reqwest` client
/// of a program that uses this crate from here.
///
/// ```
/// let client = kling_http::client_builder().build().unwrap();
/// # drop(client);
/// ```
pub fn client_builder() -> reqwest::ClientBuilder {
    #[cfg(feature = "rustls")]
    {
        // The ring provider, installed once for the process; an error means
        // one is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .user_agent(concat!("kling-rs/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(15))
}

/// `url` as it may be printed or logged: no query, no fragment, no user
/// or password. A signed URL's query is its credential.
///
/// ```
/// assert_eq!(
///     kling_http::redacted("https://u:p@cdn.example/a.mp4?X-Amz-Signature=s#t"),
///     "https://cdn.example/a.mp4"
/// );
/// ```
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

/// A reqwest error with its causes, without its URL (see [`redacted`]).
///
/// ```
/// # async fn run() {
/// let error = reqwest::get("http://127.0.0.1:9/?token=secret").await.unwrap_err();
/// assert!(!kling_http::describe(error).contains("secret"));
/// # }
/// ```
pub fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}
