//! Which provider a command runs on, and `kling providers`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use kling::upload::PostUploader;
use kling::{Client, Descriptor, Error, JobHandle, SecretString};
use kling_sandbox::Sandbox;
use serde_json::json;

use crate::Exit;
use crate::error::Failure;

/// A provider name on the command line: `sandbox`, or one of the facade's
/// list of providers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProviderName(Option<&'static Descriptor>);

/// Every value `--provider` takes: the sandbox first, then the list.
static PROVIDER_NAMES: LazyLock<Vec<ProviderName>> = LazyLock::new(|| {
    std::iter::once(ProviderName(None))
        .chain(kling::PROVIDERS.iter().map(|p| ProviderName(Some(p))))
        .collect()
});

impl ProviderName {
    /// The name as typed: `sandbox`, `shortapi`, …
    pub(crate) fn as_str(self) -> &'static str {
        self.0.map_or("sandbox", Descriptor::name)
    }
}

impl clap::ValueEnum for ProviderName {
    fn value_variants<'a>() -> &'a [Self] {
        &PROVIDER_NAMES
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self.0 {
            None => "the offline sandbox, running ShortAPI's protocol in this process".to_owned(),
            Some(p) => format!("{} (key in {})", p.title, p.key_variable),
        };
        Some(clap::builder::PossibleValue::new(self.as_str()).help(help))
    }
}

/// The provider chosen by `--provider`, `KLING_PROVIDER` or the default,
/// and where to reach it.
#[derive(Clone, Debug)]
pub(crate) struct ProviderChoice {
    pub(crate) name: ProviderName,
    pub(crate) base_url: Option<String>,
    pub(crate) upload_url: Option<String>,
    /// How long an s3:// upload's presigned URL stays valid.
    pub(crate) upload_expiry: Duration,
    pub(crate) callbacks: CallbackChoice,
    pub(crate) requests: RequestChoice,
}

/// How requests to a provider's API are bounded and retried
/// (`--request-timeout`, `--attempts`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestChoice {
    pub(crate) timeout: Duration,
    pub(crate) attempts: u32,
}

impl Default for RequestChoice {
    fn default() -> Self {
        RequestChoice {
            timeout: kling::ApiClient::DEFAULT_REQUEST_TIMEOUT,
            attempts: kling::RetryPolicy::default().max_attempts,
        }
    }
}

impl RequestChoice {
    fn apply(self, api: kling::ApiClient) -> kling::ApiClient {
        let retry = kling::RetryPolicy {
            max_attempts: self.attempts,
            ..kling::RetryPolicy::default()
        };
        api.with_retry(retry).with_request_timeout(self.timeout)
    }
}

/// Where providers' calls back are received (`--callback-listen`,
/// `--callback-url`). Clones share one listener, started by the first
/// session that needs it and kept until the command ends.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallbackChoice {
    pub(crate) listen: Option<std::net::SocketAddr>,
    pub(crate) public_url: Option<String>,
    receiver: Arc<tokio::sync::OnceCell<Option<kling::CallbackReceiver>>>,
}

impl CallbackChoice {
    pub(crate) fn new(listen: Option<std::net::SocketAddr>, public_url: Option<String>) -> Self {
        CallbackChoice {
            listen,
            public_url,
            receiver: Arc::default(),
        }
    }

    /// `client`, showing the callback URL a create would carry, without
    /// listening (`--dry-run`).
    pub(crate) fn preview(&self, client: Client) -> Result<Client, Failure> {
        let Some(listen) = self.applies(&client)? else {
            return Ok(client);
        };
        let receiver = receiver_at(&self.public_url(&client, listen)?)?;
        Ok(client.with_callbacks(receiver))
    }

    /// `client`, taking calls back for the jobs it creates and waits for,
    /// on a listener shared by every session of the command. An address
    /// already in use (another kling with the same setting) is a warning:
    /// its jobs are polled.
    pub(crate) async fn listen(&self, client: Client) -> Result<Client, Failure> {
        let Some(listen) = self.applies(&client)? else {
            return Ok(client);
        };
        let started = self
            .receiver
            .get_or_try_init(|| self.start(&client, listen))
            .await?;
        Ok(match started {
            Some(receiver) => client.with_callbacks(receiver.clone()),
            None => client,
        })
    }

    /// The address to listen on, when callbacks were asked for and the
    /// provider makes them.
    fn applies(&self, client: &Client) -> Result<Option<std::net::SocketAddr>, Failure> {
        let Some(listen) = self.listen else {
            if self.public_url.is_some() {
                return Err(Failure::usage(
                    "--callback-url needs --callback-listen: the address this process \
                     listens on",
                ));
            }
            return Ok(None);
        };
        let provider = client.provider();
        if provider.capabilities().callbacks {
            return Ok(Some(listen));
        }
        let calling: Vec<&str> = kling::PROVIDERS
            .iter()
            .filter(|p| p.capabilities.callbacks)
            .map(Descriptor::name)
            .collect();
        tracing::warn!(
            "{} does not call back; its jobs are polled (providers that call back: {})",
            provider.name(),
            calling.join(", ")
        );
        Ok(None)
    }

    /// The URL providers call: `--callback-url`, or `http://ADDR`. A
    /// loopback URL handed to a provider that is not on this machine
    /// could never be called, so it is refused.
    fn public_url(&self, client: &Client, bound: std::net::SocketAddr) -> Result<String, Failure> {
        let public = match &self.public_url {
            Some(url) => url.clone(),
            None if bound.ip().is_unspecified() => {
                return Err(Failure::usage(format!(
                    "--callback-listen {bound} listens on every address: give the URL \
                     providers reach it at with --callback-url"
                )));
            }
            None => format!("http://{bound}"),
        };
        let parsed = url::Url::parse(&public).ok();
        let remote = client
            .provider()
            .base_url()
            .and_then(|base| url::Url::parse(base).ok())
            .is_some_and(|base| !kling_http::is_loopback(&base));
        if remote && parsed.as_ref().is_some_and(kling_http::is_loopback) {
            return Err(Failure::usage(format!(
                "{} cannot call {}, an address of this machine only: give the URL it reaches \
                 this listener at with --callback-url (a tunnel, a public address)",
                client.provider().name(),
                kling_http::redacted(&public)
            )));
        }
        if remote && parsed.is_some_and(|url| url.scheme() == "http") {
            tracing::warn!(
                url = %kling_http::redacted(&public),
                "callbacks over plain http: each job's token crosses the network in clear"
            );
        }
        Ok(public)
    }

    /// Listens on `listen` for the rest of the command; `None` when the
    /// address is taken.
    async fn start(
        &self,
        client: &Client,
        listen: std::net::SocketAddr,
    ) -> Result<Option<kling::CallbackReceiver>, Failure> {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::warn!(
                    "--callback-listen {listen} is in use (another kling?); jobs are polled"
                );
                return Ok(None);
            }
            Err(e) => {
                return Err(Failure::usage(format!(
                    "--callback-listen {listen}: cannot listen there: {e}"
                )));
            }
        };
        let bound = listener
            .local_addr()
            .map_err(|e| Failure::usage(format!("--callback-listen {listen}: {e}")))?;
        let receiver = receiver_at(&self.public_url(client, bound)?)?;
        tracing::info!(listen = %bound, url = %receiver.public_url(), "listening for callbacks");
        let serving = receiver.clone();
        tokio::spawn(async move {
            if let Err(e) = serving.serve(listener).await {
                tracing::warn!(error = %e, "the callback listener stopped; jobs are polled");
            }
        });
        Ok(Some(receiver))
    }
}

/// A receiver reached at `public`, which the user gave or which was made
/// from the listen address.
fn receiver_at(public: &str) -> Result<kling::CallbackReceiver, Failure> {
    kling::CallbackReceiver::new(public).map_err(|e| Failure::usage(format!("--callback-url: {e}")))
}

/// How long a sandbox job takes: long enough to show its phases, short
/// enough for a first try.
const SANDBOX_JOB: Duration = Duration::from_secs(3);

impl ProviderChoice {
    /// The choice for a provider named `provider` (as in job handles) at
    /// `base_url`.
    pub(crate) fn hosted(provider: &str, base_url: Option<String>) -> Option<ProviderChoice> {
        Some(ProviderChoice {
            name: ProviderName(Some(kling::provider_named(provider)?)),
            base_url,
            upload_url: None,
            upload_expiry: Duration::from_secs(86_400),
            callbacks: CallbackChoice::default(),
            requests: RequestChoice::default(),
        })
    }

    /// The choice for following `job`: the provider its handle names.
    pub(crate) fn for_job(&self, job: &JobHandle) -> Result<ProviderChoice, Failure> {
        let Some(hosted) = kling::provider_named(&job.provider) else {
            let known: Vec<&str> = kling::PROVIDERS.iter().map(Descriptor::name).collect();
            return Err(Failure::usage(format!(
                "unknown provider {:?} in {job}; this build knows {}",
                job.provider,
                known.join(", ")
            )));
        };
        if self.name.0.is_none() && self.base_url.is_none() {
            return Err(Failure::usage(format!(
                "{job} is a {} job id; the in-process sandbox forgets its jobs when the command \
                 that made them exits. For {} itself, set {} and pass --provider {}; for a \
                 running `kling sandbox`, add --base-url http://ADDR/{}.",
                hosted.title,
                hosted.title,
                hosted.key_variable,
                hosted.name(),
                hosted.name()
            )));
        }
        Ok(ProviderChoice {
            name: ProviderName(Some(hosted)),
            base_url: self.base_url.clone(),
            upload_url: self.upload_url.clone(),
            upload_expiry: self.upload_expiry,
            callbacks: self.callbacks.clone(),
            requests: self.requests,
        })
    }

    /// Where local files are uploaded: `--upload-url`, or a sandbox's
    /// `/uploads` when the base URL is a `kling sandbox` on loopback and
    /// the provider does not take local files itself (inline, or through
    /// its own storage, which the sandbox emulates too).
    fn uploads(&self) -> Option<String> {
        if let Some(url) = &self.upload_url {
            return Some(url.clone());
        }
        if self
            .name
            .0
            .is_some_and(|p| p.capabilities.takes_local_files())
        {
            return None;
        }
        let base = url::Url::parse(self.base_url.as_deref()?).ok()?;
        let loopback = kling_http::is_loopback(&base);
        let prefix = kling::PROVIDERS
            .iter()
            .map(|p| format!("/{}", p.name()))
            .find(|prefix| base.path().trim_end_matches('/').ends_with(prefix.as_str()))?;
        let origin = base.as_str().trim_end_matches('/');
        loopback.then(|| format!("{}/uploads", &origin[..origin.len() - prefix.len()]))
    }
}

/// A client ready to run, and the sandbox behind it when there is one.
pub(crate) struct Session {
    pub(crate) client: Client,
    sandbox: Option<Sandbox>,
    /// The provider and the base URL it was reached at, for the journal;
    /// `None` for the in-process sandbox, whose jobs die with the process.
    target: Option<(&'static str, Option<String>)>,
    /// The in-process sandbox's temporary ledger.
    scratch: Option<tempfile::TempDir>,
}

impl Session {
    /// Opens the chosen provider. A key is read only when something will
    /// be sent (`dry_run` needs none).
    pub(crate) async fn open(choice: &ProviderChoice, dry_run: bool) -> Result<Session, Failure> {
        let Some(hosted) = choice.name.0 else {
            return Self::in_process_sandbox(choice.requests).await;
        };
        let key = match std::env::var(hosted.key_variable) {
            Ok(key) if !key.trim().is_empty() => SecretString::from(key),
            _ if dry_run => SecretString::from(""),
            _ => {
                return Err(Failure::usage(format!(
                    "{} is not set; export your {} key in it (or use --dry-run, or --provider \
                     sandbox)",
                    hosted.key_variable, hosted.title
                )));
            }
        };
        let base = choice.base_url.as_deref().unwrap_or(hosted.base_url);
        let api = kling::ApiClient::new(hosted.name(), base, Some(key)).map_err(|e| match e {
            // Nothing was recorded or sent: the key is refused as it is read.
            Error::InvalidKey { problem, .. } => Failure::usage(format!(
                "{} cannot be used as an API key: {problem}; nothing was sent",
                hosted.key_variable
            )),
            // --base-url is a flag: a URL the key must not go to is a usage error.
            Error::Unsupported { .. } => Failure::from(&e).with_exit(Exit::Usage),
            e => Failure::from(&e),
        })?;
        let mut client = Client::from_arc((hosted.build)(choice.requests.apply(api)));
        if let Some(uploads) = choice.uploads() {
            client = client.with_uploader(uploader(&uploads, choice.upload_expiry)?);
        }
        Ok(Session {
            client,
            sandbox: None,
            target: Some((hosted.name(), choice.base_url.clone())),
            scratch: None,
        })
    }

    /// The provider and base URL jobs are created at, when they outlive
    /// this process.
    pub(crate) fn target(&self) -> Option<(&'static str, Option<&str>)> {
        self.target
            .as_ref()
            .map(|(provider, base)| (*provider, base.as_deref()))
    }

    async fn in_process_sandbox(requests: RequestChoice) -> Result<Session, Failure> {
        let config = kling_sandbox::Config::default().job_duration(SANDBOX_JOB);
        let sandbox = Sandbox::start(config).await.map_err(|e| {
            Failure::new(
                Exit::Transport,
                "transport",
                format!("cannot start the sandbox: {e}"),
            )
        })?;
        eprintln!(
            "provider: sandbox (an offline emulator of ShortAPI on {}; nothing leaves this machine and nothing is charged)",
            sandbox.base_url()
        );
        // The in-process sandbox speaks ShortAPI's protocol.
        let api = kling::ApiClient::new(
            kling::shortapi::DESCRIPTOR.name(),
            &format!("{}/shortapi", sandbox.base_url()),
            Some(SecretString::from("sandbox")),
        )
        .map_err(Failure::from)?;
        let shortapi = kling::shortapi::ShortApi::with_client(requests.apply(api));
        let client = Client::new(shortapi).with_uploader(Arc::new(PostUploader::new(format!(
            "{}/uploads",
            sandbox.base_url()
        ))));
        Ok(Session {
            client,
            sandbox: Some(sandbox),
            target: None,
            scratch: Some(tempfile::tempdir().map_err(|e| {
                Failure::usage(format!(
                    "cannot make a temporary ledger for the sandbox: {e}"
                ))
            })?),
        })
    }

    /// The ledger jobs are recorded in: the chosen one, or for the
    /// in-process sandbox, whose jobs end with the command, a temporary one
    /// that goes with it.
    pub(crate) async fn ledger(
        &self,
        choice: &crate::ledger::LedgerChoice,
    ) -> Result<kling_ledger::Ledger, Failure> {
        match &self.scratch {
            Some(dir) => {
                kling_ledger::Ledger::open(dir.path().join("ledger.sqlite3")).map_err(Failure::from)
            }
            None => choice.open().await,
        }
    }

    pub(crate) async fn close(self) {
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
    }
}

/// The uploader `--upload` names: a bucket, or a POST endpoint.
fn uploader(target: &str, expiry: Duration) -> Result<Arc<dyn kling::Uploader>, Failure> {
    if target.starts_with("s3://") {
        let s3 = kling::upload::S3Uploader::from_env(target)
            .map_err(|e| Failure::usage(e.to_string()))?;
        return Ok(Arc::new(s3.expiry(expiry)));
    }
    if let Some((scheme, _)) = target.split_once("://")
        && !matches!(scheme, "http" | "https")
    {
        return Err(Failure::usage(format!(
            "--upload {scheme}:// is not supported; give s3://BUCKET/PREFIX (any S3-compatible \
             store, with AWS_ENDPOINT_URL) or an http(s) endpoint"
        )));
    }
    Ok(Arc::new(PostUploader::new(target)))
}

/// Runs `future` on a fresh runtime.
pub(crate) fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => Err(Failure::new(
            Exit::Transport,
            "runtime",
            format!("cannot start the async runtime: {e}"),
        )),
    }
}

/// `kling providers`: every task and model per provider, with its price.
pub(crate) fn list(json: bool) -> Exit {
    let mut rows = Vec::new();
    for descriptor in kling::PROVIDERS {
        let caps = &descriptor.capabilities;
        for offering in caps.offerings {
            rows.push(json!({
                "provider": caps.provider,
                "task": offering.task.as_str(),
                "model": offering.model.as_str(),
                "wire_model": offering.wire_model,
                "features": offering.features.iter().map(|f| f.field()).collect::<Vec<_>>(),
                "modes": offering.modes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "durations": offering.durations,
                "price_std": offering.modes.contains(&kling::Mode::Std).then(|| offering.price_std.to_string()),
                "price_pro": offering.price_pro.to_string(),
                "cancel": caps.cancel,
                "local_files": caps.local_files,
                "storage": caps.storage,
            }));
        }
    }
    if json {
        let prices_as_of: serde_json::Map<String, serde_json::Value> = kling::PROVIDERS
            .iter()
            .filter_map(|p| Some((p.name().to_owned(), json!(p.prices_as_of?))))
            .collect();
        println!(
            "{}",
            json!({ "providers": rows, "prices_as_of": prices_as_of })
        );
        return Exit::Success;
    }
    let mut table = vec![
        [
            "PROVIDER",
            "TASK",
            "MODEL",
            "PROVIDER MODEL",
            "SECONDS",
            "STD",
            "PRO",
        ]
        .map(str::to_owned),
    ];
    for row in &rows {
        let text = |key: &str| match &row[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".to_owned(),
            other => other.to_string(),
        };
        let seconds = match row["durations"].as_array() {
            Some(list) => durations(
                &list
                    .iter()
                    .filter_map(serde_json::Value::as_u64)
                    .collect::<Vec<_>>(),
            ),
            None if row["task"] == "edit" => "input".to_owned(),
            None => "3-10".to_owned(),
        };
        table.push([
            text("provider"),
            text("task"),
            text("model"),
            text("wire_model"),
            seconds,
            text("price_std"),
            text("price_pro"),
        ]);
    }
    // Each column as wide as its widest cell.
    let widths: Vec<usize> = (0..7)
        .map(|column| {
            table
                .iter()
                .map(|cells| cells[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for cells in &table {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join(" ").trim_end());
    }
    println!();
    println!("{}", notes(kling::PROVIDERS));
    Exit::Success
}

/// Output lengths as a reader wants them: `5,10`, or `3-10` for a run.
fn durations(seconds: &[u64]) -> String {
    match (seconds.first(), seconds.last()) {
        (Some(first), Some(last))
            if seconds.len() > 2 && seconds.windows(2).all(|pair| pair[1] == pair[0] + 1) =>
        {
            format!("{first}-{last}")
        }
        _ => seconds
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The notes under `kling providers`' table, from what each provider
/// declares: where its prices come from, how local files reach it, which
/// jobs can be cancelled.
fn notes(providers: &[Descriptor]) -> String {
    let names = |keep: &dyn Fn(&Descriptor) -> bool| {
        let names: Vec<&str> = providers
            .iter()
            .filter(|p| keep(p))
            .map(Descriptor::name)
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let prices: Vec<String> = providers
        .iter()
        .map(|p| match p.prices_as_of {
            Some(date) => format!("{} as published on {date}", p.title),
            None => format!("{} publishes none per model (unknown)", p.title),
        })
        .collect();
    format!(
        "Prices: {}. \"-\": no std mode (that provider runs pro). Local files: sent inline by \
         {}; uploaded to the provider's own storage by {}; the others need an uploader (the \
         sandbox has one). Cancel: {}.",
        prices.join("; "),
        names(&|p| p.capabilities.local_files),
        names(&|p| p.capabilities.storage),
        names(&|p| p.capabilities.cancel),
    )
}

#[cfg(test)]
mod tests {
    use super::durations;

    #[test]
    fn durations_read_as_a_run_or_a_list() {
        assert_eq!(durations(&[3, 4, 5, 6, 7, 8, 9, 10]), "3-10");
        assert_eq!(durations(&[5, 10]), "5,10");
        assert_eq!(durations(&[4, 5]), "4,5");
        assert_eq!(durations(&[3, 4, 6]), "3,4,6");
        assert_eq!(durations(&[]), "");
    }
}
