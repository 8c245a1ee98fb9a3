//! `kling sandbox`: the offline emulator of the three providers, as a process.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use kling_sandbox::{Config, Fault, Provider, Sandbox};
use serde_json::json;

use crate::Exit;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on, a loopback one unless --allow-remote; port 0
    /// picks a free one.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    listen: SocketAddr,

    /// Let --listen be an address other hosts can reach. The sandbox takes
    /// any key and serves whatever is uploaded to it: only on a network you
    /// trust.
    #[arg(long)]
    allow_remote: bool,

    /// Seconds a job takes from create to result (the first quarter
    /// queued), from 0 to 86400.
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "S",
        value_parser = job_seconds,
        allow_hyphen_values = true
    )]
    job_seconds: f64,

    /// Inject a fault: KIND[:PROBABILITY][*TIMES][@PROVIDER][/OPERATION], where
    /// KIND is 429, 500, 502, 503, drop, slow[=MS], fail, expire, trickle, stall or html; PROVIDER
    /// shortapi, aimlapi or oxen; OPERATION create, status, cancel, download
    /// or events. Repeat for several.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<Fault>,

    /// Seed for fault probabilities and ids, so a run can be repeated.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// At most N jobs of one provider queued or running at once; a create
    /// beyond them gets the 429 of a concurrency limit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_running: Option<u32>,
}

/// The longest job the sandbox runs: a day.
const MAX_JOB_SECONDS: f64 = 86_400.0;

/// Reads `--job-seconds`: a finite number of seconds from 0 to a day.
fn job_seconds(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| (0.0..=MAX_JOB_SECONDS).contains(s))
        .ok_or_else(|| {
            format!("--job-seconds takes a number of seconds from 0 to {MAX_JOB_SECONDS}")
        })
}

pub(crate) fn run(args: &Args, json: bool) -> Exit {
    if !args.listen.ip().is_loopback() {
        if !args.allow_remote {
            eprintln!(
                "error: --listen {} is not a loopback address: the sandbox accepts any key, so \
                 it listens on loopback (127.0.0.1 or ::1) unless --allow-remote is given",
                args.listen
            );
            return Exit::Usage;
        }
        eprintln!(
            "warning: --allow-remote: the sandbox listens on {}, reachable from other hosts, \
             and accepts any key",
            args.listen
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Transport;
        }
    };
    runtime.block_on(serve(args, json))
}

async fn serve(args: &Args, json: bool) -> Exit {
    // --job-seconds is checked to be finite and from 0 to a day.
    let job_duration = Duration::from_secs_f64(args.job_seconds);
    let config = args
        .faults
        .iter()
        .fold(Config::default(), |config, fault| config.fault(*fault))
        .listen(args.listen)
        .job_duration(job_duration)
        .seed(args.seed);
    let config = match args.max_running {
        Some(jobs) => config.max_running(jobs as usize),
        None => config,
    };
    let sandbox = match Sandbox::start(config).await {
        Ok(sandbox) => sandbox,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {}: {e}; pick another with --listen",
                args.listen
            );
            return Exit::Transport;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = if json {
        let urls: serde_json::Map<String, serde_json::Value> = Provider::ALL
            .iter()
            .map(|p| (p.as_str().to_owned(), json!(sandbox.url(*p))))
            .collect();
        writeln!(
            out,
            "{}",
            json!({ "base_url": sandbox.base_url(), "providers": urls })
        )
    } else {
        writeln!(out, "{}", sandbox.base_url())
    };
    let _ = out.flush();
    drop(out);
    eprintln!("kling sandbox: offline emulator of each provider's API (any non-empty key works)");
    for provider in Provider::ALL {
        eprintln!("  {provider:<9} {}", sandbox.url(*provider));
    }
    eprintln!("  stats     {}/_sandbox/stats", sandbox.base_url());
    eprintln!(
        "  jobs take {job_duration:?}; {} fault(s); Ctrl-C stops",
        args.faults.len()
    );
    let _ = tokio::signal::ctrl_c().await;
    sandbox.stop().await;
    Exit::Success
}
