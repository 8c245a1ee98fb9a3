//! One provider, described: what the facade's list of providers holds.

use std::sync::Arc;

use kling_core::Error;
use kling_core::job::JobStatus;
use kling_core::provider::{Capabilities, Provider, WireSchemas};
use secrecy::SecretString;

use crate::ApiClient;

/// Builds a provider's adapter on an API client: its base URL, key,
/// HTTP settings, retry policy and request timeout, as the caller set them.
pub type Build = fn(ApiClient) -> Arc<dyn Provider>;

/// One provider, described: everything a program needs to offer it
/// without naming it. Each adapter crate exports one; the facade holds the
/// only list of them, and the CLI, `cargo xtask` and the fuzz targets
/// iterate that list.
///
/// Built in `const` context from the adapter's capabilities and how to
/// build it, then named and placed:
///
/// ```
/// use std::sync::Arc;
/// use kling_core::provider::{Capabilities, Offering};
/// use kling_core::{Model, Task};
/// use kling_http::Descriptor;
/// # use kling_core::provider::{PreparedCall, Provider};
/// # use kling_core::{Checked, Error, JobHandle, JobStatus};
/// # #[derive(Debug)] struct Example;
/// # #[async_trait::async_trait]
/// # impl Provider for Example {
/// #     fn capabilities(&self) -> &Capabilities { &CAPABILITIES }
/// #     fn prepare(&self, _: &Checked) -> Result<PreparedCall, Error> { unimplemented!() }
/// #     async fn submit(&self, _: &Checked) -> Result<JobHandle, Error> { unimplemented!() }
/// #     async fn status(&self, _: &JobHandle) -> Result<JobStatus, Error> { unimplemented!() }
/// # }
///
/// const CAPABILITIES: Capabilities =
///     Capabilities::new("example", &[Offering::new(Task::Edit, Model::O1, "example/edit")]);
///
/// pub const DESCRIPTOR: Descriptor = Descriptor::new(CAPABILITIES, |_api| Arc::new(Example))
///     .title("Example")
///     .package("kling-example")
///     .key_variable("EXAMPLE_KEY")
///     .base_url("https://api.example.com");
///
/// assert_eq!(DESCRIPTOR.name(), "example");
/// let provider = DESCRIPTOR.connect(DESCRIPTOR.base_url, "key".into())?;
/// assert_eq!(provider.name(), "example");
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Descriptor {
    /// What it offers; its `provider` is the name used on the command line
    /// and in job handles.
    pub capabilities: Capabilities,
    /// The name people know it by: `AI/ML API`.
    pub title: &'static str,
    /// The adapter's package: `kling-aimlapi`.
    pub package: &'static str,
    /// The environment variable its API key is read from.
    pub key_variable: &'static str,
    /// Its API's address.
    pub base_url: &'static str,
    /// When its published prices were read, where it publishes any.
    pub prices_as_of: Option<&'static str>,
    /// Builds its adapter on an API client ([`Descriptor::connect`] makes
    /// one with the defaults).
    pub build: Build,
    /// Its request bodies' schemas, for `cargo xtask schemas` and `check`.
    pub wire_schemas: WireSchemas,
    /// Where its create body sits in its published OpenAPI documents, when
    /// it publishes some (`cargo xtask check --against`).
    pub openapi_create_path: Option<&'static str>,
    /// Reads bytes as every kind of answer it sends (statuses, callbacks,
    /// events, charges) and returns the statuses they gave: what the fuzz
    /// targets and the hostile-answer tests feed.
    #[doc(hidden)]
    pub read_answers: fn(&[u8]) -> Vec<JobStatus>,
}

impl Descriptor {
    /// The provider `capabilities` describes, built by `build`; name and
    /// place it with the other methods.
    pub const fn new(capabilities: Capabilities, build: Build) -> Self {
        Descriptor {
            capabilities,
            title: capabilities.provider,
            package: "",
            key_variable: "",
            base_url: "",
            prices_as_of: None,
            build,
            wire_schemas: Vec::new,
            openapi_create_path: None,
            read_answers: |_| Vec::new(),
        }
    }

    /// Its name on the command line and in job handles.
    pub const fn name(&self) -> &'static str {
        self.capabilities.provider
    }

    /// Its adapter at `base_url` with `key`, with the default HTTP
    /// settings, retry policy and request timeout. For other settings,
    /// build the [`ApiClient`] and pass it to [`Descriptor::build`]:
    ///
    /// ```
    /// use std::time::Duration;
    /// use kling_http::{ApiClient, ClientSettings, RetryPolicy};
    ///
    /// # fn run(descriptor: &kling_http::Descriptor) -> Result<(), kling_core::Error> {
    /// let api = ApiClient::new(descriptor.name(), descriptor.base_url, Some("key".into()))?
    ///     .with_settings(&ClientSettings::from_builder(kling_http::client_builder))?
    ///     .with_retry(RetryPolicy { max_attempts: 3, ..RetryPolicy::default() })
    ///     .with_request_timeout(Duration::from_secs(20));
    /// let provider = (descriptor.build)(api);
    /// # drop(provider);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ApiClient::new`]: a base URL the key must not go to, a key no
    /// header can carry.
    pub fn connect(&self, base_url: &str, key: SecretString) -> Result<Arc<dyn Provider>, Error> {
        Ok((self.build)(ApiClient::new(
            self.name(),
            base_url,
            Some(key),
        )?))
    }

    /// Sets the name people know it by.
    #[must_use]
    pub const fn title(mut self, title: &'static str) -> Self {
        self.title = title;
        self
    }

    /// Sets the adapter's package name.
    #[must_use]
    pub const fn package(mut self, package: &'static str) -> Self {
        self.package = package;
        self
    }

    /// Sets the environment variable the key is read from.
    #[must_use]
    pub const fn key_variable(mut self, variable: &'static str) -> Self {
        self.key_variable = variable;
        self
    }

    /// Sets the API's address.
    #[must_use]
    pub const fn base_url(mut self, base_url: &'static str) -> Self {
        self.base_url = base_url;
        self
    }

    /// Sets when the published prices were read.
    #[must_use]
    pub const fn prices_as_of(mut self, date: &'static str) -> Self {
        self.prices_as_of = Some(date);
        self
    }

    /// Sets the request bodies' schemas.
    #[must_use]
    pub const fn wire_schemas(mut self, schemas: WireSchemas) -> Self {
        self.wire_schemas = schemas;
        self
    }

    /// Sets where the create body sits in the published OpenAPI documents.
    #[must_use]
    pub const fn openapi_create_path(mut self, path: &'static str) -> Self {
        self.openapi_create_path = Some(path);
        self
    }

    /// Sets what the fuzz targets feed bytes to.
    #[doc(hidden)]
    #[must_use]
    pub const fn read_answers(mut self, read: fn(&[u8]) -> Vec<JobStatus>) -> Self {
        self.read_answers = read;
        self
    }
}
