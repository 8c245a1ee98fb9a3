//! Which provider a command runs on, and `kling providers`.

use std::sync::Arc;
use std::time::Duration;

use kling::provider::Provider;
use kling::shortapi::{self, ShortApi};
use kling::upload::PostUploader;
use kling::{Client, JobHandle, SecretString};
use kling_sandbox::Sandbox;
use serde_json::json;

use crate::Exit;

/// A provider name on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProviderName {
    /// The offline sandbox, running ShortAPI's protocol in this process.
    Sandbox,
    /// ShortAPI (key in SHORTAPI_KEY).
    Shortapi,
}

/// The provider chosen by `--provider`, `KLING_PROVIDER` or the default,
/// and where to reach it.
#[derive(Clone, Debug)]
pub(crate) struct ProviderChoice {
    pub(crate) name: ProviderName,
    pub(crate) base_url: Option<String>,
}

/// How long a sandbox job takes: long enough to show its phases, short
/// enough for a first try.
const SANDBOX_JOB: Duration = Duration::from_secs(3);

impl ProviderChoice {
    /// The choice for following `job`: the provider its handle names.
    pub(crate) fn for_job(&self, job: &JobHandle) -> Result<ProviderChoice, Exit> {
        match job.provider.as_str() {
            shortapi::NAME if self.name == ProviderName::Sandbox && self.base_url.is_none() => {
                eprintln!(
                    "error: {job} is a ShortAPI job id; the in-process sandbox forgets its jobs when the \
                     command that made them exits. For ShortAPI itself, set SHORTAPI_KEY and pass \
                     --provider shortapi; for a running `kling sandbox`, add --base-url http://ADDR/shortapi."
                );
                Err(Exit::Usage)
            }
            shortapi::NAME => Ok(ProviderChoice {
                name: ProviderName::Shortapi,
                base_url: self.base_url.clone(),
            }),
            other => {
                eprintln!("error: unknown provider {other:?} in {job}; this build knows shortapi");
                Err(Exit::Usage)
            }
        }
    }
}

/// A client ready to run, and the sandbox behind it when there is one.
pub(crate) struct Session {
    pub(crate) client: Client,
    sandbox: Option<Sandbox>,
}

impl Session {
    /// Opens the chosen provider. A key is read only when something will
    /// be sent (`dry_run` needs none).
    pub(crate) async fn open(choice: &ProviderChoice, dry_run: bool) -> Result<Session, Exit> {
        match choice.name {
            ProviderName::Sandbox => {
                let config = kling_sandbox::Config::default().job_duration(SANDBOX_JOB);
                let sandbox = Sandbox::start(config).await.map_err(|e| {
                    eprintln!("error: cannot start the sandbox: {e}");
                    Exit::Transport
                })?;
                eprintln!(
                    "provider: sandbox (an offline emulator of ShortAPI on {}; nothing leaves this machine and nothing is charged)",
                    sandbox.base_url()
                );
                let shortapi = ShortApi::with_base_url(
                    &sandbox.url(kling_sandbox::Provider::ShortApi),
                    SecretString::from("sandbox"),
                )
                .map_err(|e| crate::jobs::fail(&e))?;
                let client = Client::new(shortapi).with_uploader(Arc::new(PostUploader::new(
                    format!("{}/uploads", sandbox.base_url()),
                )));
                Ok(Session {
                    client,
                    sandbox: Some(sandbox),
                })
            }
            ProviderName::Shortapi => {
                let key = match std::env::var(shortapi::KEY_VARIABLE) {
                    Ok(key) if !key.trim().is_empty() => SecretString::from(key),
                    _ if dry_run => SecretString::from(""),
                    _ => {
                        eprintln!(
                            "error: {} is not set; export your ShortAPI key in it (or use --dry-run, or --provider sandbox)",
                            shortapi::KEY_VARIABLE
                        );
                        return Err(Exit::Usage);
                    }
                };
                let base = choice.base_url.as_deref().unwrap_or(shortapi::BASE_URL);
                let shortapi =
                    ShortApi::with_base_url(base, key).map_err(|e| crate::jobs::fail(&e))?;
                Ok(Session {
                    client: Client::new(shortapi),
                    sandbox: None,
                })
            }
        }
    }

    pub(crate) async fn close(self) {
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
    }
}

/// Runs `future` on a fresh runtime.
pub(crate) fn block_on(future: impl std::future::Future<Output = Exit>) -> Exit {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            Exit::Transport
        }
    }
}

/// `kling providers`: every task and model per provider, with its price.
pub(crate) fn list(json: bool) -> Exit {
    let capabilities = [
        ShortApi::with_base_url(shortapi::BASE_URL, SecretString::from(""))
            .map(|p| *p.capabilities()),
    ];
    let mut rows = Vec::new();
    for caps in capabilities.into_iter().flatten() {
        for offering in caps.offerings {
            rows.push(json!({
                "provider": caps.provider,
                "task": offering.task.as_str(),
                "model": offering.model.as_str(),
                "wire_model": offering.wire_model,
                "features": offering.features.iter().map(|f| f.field()).collect::<Vec<_>>(),
                "price_std": offering.price_std.to_string(),
                "price_pro": offering.price_pro.to_string(),
                "cancel": caps.cancel,
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
    println!(
        "{:<9} {:<8} {:<6} {:<34} {:<16} {:<16}",
        "PROVIDER", "TASK", "MODEL", "PROVIDER MODEL", "STD", "PRO"
    );
    for row in &rows {
        let text = |key: &str| row[key].as_str().unwrap_or_default().to_owned();
        println!(
            "{:<9} {:<8} {:<6} {:<34} {:<16} {:<16}",
            text("provider"),
            text("task"),
            text("model"),
            text("wire_model"),
            text("price_std"),
            text("price_pro")
        );
    }
    println!();
    println!(
        "prices as published by ShortAPI on {}; sandbox: ShortAPI's protocol, offline and free",
        shortapi::PRICES_AS_OF
    );
    Exit::Success
}
