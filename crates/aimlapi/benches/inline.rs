//! Peak memory of sending a 150 MB local video inline (as a `data:` URI) to
//! AI/ML API's protocol, against the file's size.
//!
//! The sandbox runs in a child process (this same binary, re-run), so the
//! figure is the client's alone: `cargo bench -p kling-aimlapi --bench
//! inline`. Linux only (it reads `/proc/self/status`).

// Byte counts are shown as decimal megabytes; f64 is precise enough.
#![allow(clippy::cast_precision_loss)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kling_aimlapi::AimlApi;
use kling_core::provider::Provider as _;
use kling_core::{EditRequest, JobState, Media};

const SIZE: u64 = 150_000_000;
const ROLE: &str = "KLING_BENCH_SANDBOX";

/// `VmHWM` (peak resident set) and `VmRSS`, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The child: a sandbox on a random port until its stdin closes.
fn serve() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sandbox = kling_sandbox::Sandbox::start(
            kling_sandbox::Config::default().job_duration(Duration::from_millis(100)),
        )
        .await
        .unwrap();
        println!("{}", sandbox.url(kling_sandbox::Provider::AimlApi));
        std::io::stdout().flush().unwrap();
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await
        .unwrap();
    });
}

fn main() {
    if std::env::var_os(ROLE).is_some() {
        return serve();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut base = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut base)
        .unwrap();
    let base = base.trim().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.mp4");
    kling_sandbox::write_padded_video(&input, SIZE).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (peak_before, rss_before) = memory();
    let started = Instant::now();
    let done = runtime.block_on(async {
        let aimlapi = AimlApi::with_base_url(&base, "k".into()).unwrap();
        let request = EditRequest::new(Media::file(&input), "Make @Video1 snowy").into();
        let job = kling_sandbox::submit(&aimlapi, &request).await.unwrap();
        let sent = started.elapsed();
        for _ in 0..200 {
            if let JobState::Succeeded { .. } = aimlapi.status(&job).await.unwrap().state {
                return Some(sent);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    });
    let (peak, _) = memory();
    drop(child.stdin.take());
    let _ = child.wait();

    let sent = done.expect("the sandbox finished the job");
    println!(
        "inline upload: a {} MP4 as a data: URI to the sandbox (AI/ML API protocol)",
        mb(SIZE)
    );
    println!(
        "  body sent       {} in {:.2?}",
        mb(SIZE.div_ceil(3) * 4),
        sent
    );
    println!(
        "  RSS before      {} (peak so far {})",
        mb(rss_before),
        mb(peak_before)
    );
    println!("  peak RSS        {}", mb(peak));
    println!(
        "  peak / file     {:.3} (target: peak under 64 MB)",
        peak as f64 / SIZE as f64
    );
    if peak >= 64_000_000 {
        println!("  OVER TARGET");
        std::process::exit(1);
    }
}
