//! The caller's HTTP client settings, applied to every client this
//! workspace makes.

use std::fmt;
use std::sync::Arc;

/// How the HTTP clients of kling-rs are made: this crate's defaults, the
/// caller's builder (a custom CA, a proxy that needs credentials, a local
/// address), or the caller's client as it is.
///
/// Each use sets its own redirect policy on a builder: API calls follow no
/// redirect (the key must not travel to another host), downloads and URL
/// probes a few. A client given as it is keeps its own policy; reqwest
/// drops `Authorization` on a redirect to another host.
///
/// ```
/// use kling_http::ClientSettings;
///
/// let settings = ClientSettings::from_builder(|| {
///     kling_http::client_builder().proxy(reqwest::Proxy::all("http://proxy.internal:3128").unwrap())
/// });
/// let api = kling_http::ApiClient::new("shortapi", "https://api.shortapi.ai", None)?
///     .with_settings(&settings)?;
/// # drop(api);
/// # Ok::<(), kling_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct ClientSettings {
    make: Make,
}

#[derive(Clone, Default)]
enum Make {
    #[default]
    Defaults,
    Builder(Arc<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>),
    Client(reqwest::Client),
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.make {
            Make::Defaults => "defaults",
            Make::Builder(_) => "the caller's builder",
            Make::Client(_) => "the caller's client",
        };
        f.debug_tuple("ClientSettings").field(&what).finish()
    }
}

impl ClientSettings {
    /// Clients start from the builder `make` returns. Start it from
    /// [`client_builder`](crate::client_builder) to keep this crate's TLS
    /// setup, user agent and connect timeout.
    pub fn from_builder(make: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static) -> Self {
        ClientSettings {
            make: Make::Builder(Arc::new(make)),
        }
    }

    /// Every request goes through `client`, with its own settings and
    /// redirect policy.
    pub fn from_client(client: reqwest::Client) -> Self {
        ClientSettings {
            make: Make::Client(client),
        }
    }

    /// A client for one use, following `redirects`.
    ///
    /// # Errors
    ///
    /// When the client cannot be built (the TLS backend, a bad setting).
    pub fn client(
        &self,
        redirects: reqwest::redirect::Policy,
    ) -> Result<reqwest::Client, reqwest::Error> {
        match &self.make {
            Make::Defaults => crate::client_builder().redirect(redirects).build(),
            Make::Builder(make) => make().redirect(redirects).build(),
            Make::Client(client) => Ok(client.clone()),
        }
    }
}
