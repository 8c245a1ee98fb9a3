//! Which provider a command runs on, and `kling providers`.

use std::sync::Arc;
use std::time::Duration;

use kling::aimlapi::{self, AimlApi};
use kling::oxen::{self, Oxen};
use kling::provider::Provider;
use kling::shortapi::{self, ShortApi};
use kling::upload::PostUploader;
use kling::{Client, Error, JobHandle, SecretString};
use kling_sandbox::Sandbox;
use serde_json::json;

use crate::Exit;
use crate::error::Failure;

/// A provider name on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProviderName {
    /// The offline sandbox, running ShortAPI's protocol in this process.
    Sandbox,
    /// ShortAPI (key in SHORTAPI_KEY).
    Shortapi,
    /// AI/ML API (key in AIMLAPI_KEY).
    Aimlapi,
    /// Oxen.ai (key in OXEN_API_KEY).
    Oxen,
}

/// A hosted provider: where it is, where its key comes from, and how its
/// adapter is built. Adding a provider adds one entry here.
struct Hosted {
    name: ProviderName,
    id: &'static str,
    title: &'static str,
    key_variable: &'static str,
    base_url: &'static str,
    adapter: BuildAdapter,
}

/// Builds an adapter for a base URL and key.
type BuildAdapter = fn(&str, SecretString) -> Result<Arc<dyn Provider>, Error>;

const HOSTED: &[Hosted] = &[
    Hosted {
        name: ProviderName::Shortapi,
        id: shortapi::NAME,
        title: "ShortAPI",
        key_variable: shortapi::KEY_VARIABLE,
        base_url: shortapi::BASE_URL,
        adapter: |base, key| Ok(Arc::new(ShortApi::with_base_url(base, key)?)),
    },
    Hosted {
        name: ProviderName::Aimlapi,
        id: aimlapi::NAME,
        title: "AI/ML API",
        key_variable: aimlapi::KEY_VARIABLE,
        base_url: aimlapi::BASE_URL,
        adapter: |base, key| Ok(Arc::new(AimlApi::with_base_url(base, key)?)),
    },
    Hosted {
        name: ProviderName::Oxen,
        id: oxen::NAME,
        title: "Oxen.ai",
        key_variable: oxen::KEY_VARIABLE,
        base_url: oxen::BASE_URL,
        adapter: |base, key| Ok(Arc::new(Oxen::with_base_url(base, key)?)),
    },
];

fn hosted(name: ProviderName) -> Option<&'static Hosted> {
    HOSTED.iter().find(|h| h.name == name)
}

/// The provider chosen by `--provider`, `KLING_PROVIDER` or the default,
/// and where to reach it.
#[derive(Clone, Debug)]
pub(crate) struct ProviderChoice {
    pub(crate) name: ProviderName,
    pub(crate) base_url: Option<String>,
    pub(crate) upload_url: Option<String>,
}

/// How long a sandbox job takes: long enough to show its phases, short
/// enough for a first try.
const SANDBOX_JOB: Duration = Duration::from_secs(3);

impl ProviderChoice {
    /// The choice for a provider named `provider` (as in job handles) at
    /// `base_url`.
    pub(crate) fn hosted(provider: &str, base_url: Option<String>) -> Option<ProviderChoice> {
        let hosted = HOSTED.iter().find(|h| h.id == provider)?;
        Some(ProviderChoice {
            name: hosted.name,
            base_url,
            upload_url: None,
        })
    }

    /// The choice for following `job`: the provider its handle names.
    pub(crate) fn for_job(&self, job: &JobHandle) -> Result<ProviderChoice, Failure> {
        let Some(hosted) = HOSTED.iter().find(|h| h.id == job.provider) else {
            let known: Vec<&str> = HOSTED.iter().map(|h| h.id).collect();
            return Err(Failure::usage(format!(
                "unknown provider {:?} in {job}; this build knows {}",
                job.provider,
                known.join(", ")
            )));
        };
        if self.name == ProviderName::Sandbox && self.base_url.is_none() {
            return Err(Failure::usage(format!(
                "{job} is a {} job id; the in-process sandbox forgets its jobs when the command \
                 that made them exits. For {} itself, set {} and pass --provider {}; for a \
                 running `kling sandbox`, add --base-url http://ADDR/{}.",
                hosted.title, hosted.title, hosted.key_variable, hosted.id, hosted.id
            )));
        }
        Ok(ProviderChoice {
            name: hosted.name,
            base_url: self.base_url.clone(),
            upload_url: self.upload_url.clone(),
        })
    }

    /// Where local files are uploaded: `--upload-url`, or a sandbox's
    /// `/uploads` when the base URL is a `kling sandbox` on loopback.
    fn uploads(&self) -> Option<String> {
        if let Some(url) = &self.upload_url {
            return Some(url.clone());
        }
        let base = url::Url::parse(self.base_url.as_deref()?).ok()?;
        let loopback = kling_http::is_loopback(&base);
        let prefix = HOSTED
            .iter()
            .map(|h| format!("/{}", h.id))
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
        let Some(hosted) = hosted(choice.name) else {
            return Self::in_process_sandbox().await;
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
        let adapter = (hosted.adapter)(base, key).map_err(|e| match e {
            // Nothing was recorded or sent: the key is refused as it is read.
            Error::InvalidKey { problem, .. } => Failure::usage(format!(
                "{} cannot be used as an API key: {problem}; nothing was sent",
                hosted.key_variable
            )),
            // --base-url is a flag: a URL the key must not go to is a usage error.
            Error::Unsupported { .. } => Failure::from(&e).with_exit(Exit::Usage),
            e => Failure::from(&e),
        })?;
        let mut client = Client::from_arc(adapter);
        if let Some(uploads) = choice.uploads() {
            client = client.with_uploader(Arc::new(PostUploader::new(uploads)));
        }
        Ok(Session {
            client,
            sandbox: None,
            target: Some((hosted.id, choice.base_url.clone())),
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

    async fn in_process_sandbox() -> Result<Session, Failure> {
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
        let shortapi = ShortApi::with_base_url(
            &sandbox.url(kling_sandbox::Provider::ShortApi),
            SecretString::from("sandbox"),
        )
        .map_err(Failure::from)?;
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
    pub(crate) fn ledger(
        &self,
        choice: &crate::ledger::LedgerChoice,
    ) -> Result<kling_ledger::Ledger, Failure> {
        match &self.scratch {
            Some(dir) => {
                kling_ledger::Ledger::open(dir.path().join("ledger.sqlite3")).map_err(Failure::from)
            }
            None => choice.open(),
        }
    }

    pub(crate) async fn close(self) {
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
    }
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
    for caps in kling::PROVIDERS {
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
            }));
        }
    }
    if json {
        println!(
            "{}",
            json!({ "providers": rows, "prices_as_of": { "shortapi": shortapi::PRICES_AS_OF } })
        );
        return Exit::Success;
    }
    let line = |cells: [&str; 7]| {
        println!(
            "{:<9} {:<8} {:<6} {:<42} {:<8} {:<10} {}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
        );
    };
    line([
        "PROVIDER",
        "TASK",
        "MODEL",
        "PROVIDER MODEL",
        "SECONDS",
        "STD",
        "PRO",
    ]);
    for row in &rows {
        let text = |key: &str| match &row[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".to_owned(),
            other => other.to_string(),
        };
        let seconds = match row["durations"].as_array() {
            Some(list) => list
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            None if row["task"] == "edit" => "input".to_owned(),
            None => "3-10".to_owned(),
        };
        line([
            &text("provider"),
            &text("task"),
            &text("model"),
            &text("wire_model"),
            &seconds,
            &text("price_std"),
            &text("price_pro"),
        ]);
    }
    println!();
    println!(
        "Prices as published by ShortAPI on {}; AI/ML API and Oxen.ai publish none per model \
         (unknown). \"-\": no std mode (those providers run pro). Local files: aimlapi sends them \
         inline; shortapi and oxen need an uploader (the sandbox has one). Cancel: oxen.",
        shortapi::PRICES_AS_OF
    );
    Exit::Success
}
