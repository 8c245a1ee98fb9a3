//! `cargo xtask bench`: the figures a user would compare, each with the
//! ratio it is judged by, measured in one run. Linux (it reads peak RSS
//! from the kernel).

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kling::Descriptor;

use crate::root;

/// One row of the printed table.
struct Row {
    name: &'static str,
    figure: String,
    against: String,
    ratio: String,
    target: &'static str,
}

/// A child's exit and its peak resident set, from `wait4`.
fn run_measured(command: &mut Command) -> Result<(bool, u64), String> {
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let pid = i32::try_from(child.id()).map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that `wait4` fills; `pid` is our
    // child, reaped here once (the `Child` is dropped without waiting).
    #[allow(unsafe_code)]
    let (reaped, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let reaped = libc::wait4(pid, &raw mut status, 0, &raw mut usage);
        (reaped, usage)
    };
    drop(child);
    if reaped != pid {
        return Err(format!("wait4 failed for {command:?}"));
    }
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    // ru_maxrss is in KiB on Linux.
    let peak = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    Ok((exited_ok, peak))
}

fn mb(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let value = bytes as f64 / 1e6;
    format!("{value:.1} MB")
}

fn seconds(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}

fn cargo(args: &[&str]) -> Result<(), String> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed", args.join(" ")))
    }
}

/// The `kling` binary the suites run: release, unless `KLING_PROFILE`
/// says `debug` (CI, where tests have built it already).
pub(crate) fn kling_binary() -> PathBuf {
    root().join("target").join(profile()).join("kling")
}

fn profile() -> &'static str {
    match std::env::var("KLING_PROFILE").as_deref() {
        Ok("debug") => "debug",
        _ => "release",
    }
}

/// Builds `kling` in the profile the suites run.
pub(crate) fn build_kling() -> Result<(), String> {
    if profile() == "debug" {
        cargo(&["build", "-q", "-p", "kling-cli"])
    } else {
        cargo(&["build", "--release", "-q", "-p", "kling-cli"])
    }
}

/// Writes a 150 MB MP4 whose `moov` comes after its `mdat`, sparse.
fn big_mp4(path: &Path) -> Result<u64, String> {
    mp4_of(path, 150_000_000).map(|(size, _)| size)
}

/// Writes an MP4 with an `mdat` of `mdat` bytes and its `moov` after it,
/// sparse: its size, and its `moov`'s.
fn mp4_of(path: &Path, mdat: u32) -> Result<(u64, u64), String> {
    let fixture = root().join("crates/core/tests/fixtures/faststart.mp4");
    let data = std::fs::read(&fixture).map_err(|e| e.to_string())?;
    let (mut ftyp, mut moov) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at + 8 <= data.len() {
        let size =
            u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        if size < 8 || at + size > data.len() {
            break;
        }
        match &data[at + 4..at + 8] {
            b"ftyp" => ftyp = data[at..at + size].to_vec(),
            b"moov" => moov = data[at..at + size].to_vec(),
            _ => {}
        }
        at += size;
    }
    let mut file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    file.write_all(&ftyp).map_err(|e| e.to_string())?;
    file.write_all(&mdat.to_be_bytes())
        .map_err(|e| e.to_string())?;
    file.write_all(b"mdat").map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(ftyp.len() as u64 + u64::from(mdat)))
        .map_err(|e| e.to_string())?;
    file.write_all(&moov).map_err(|e| e.to_string())?;
    Ok((
        ftyp.len() as u64 + u64::from(mdat) + moov.len() as u64,
        moov.len() as u64,
    ))
}

/// Counts what a reader reads.
struct Counting<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// The median wall time of `runs` runs of `command`, and the largest peak
/// RSS seen.
fn timed(runs: u32, mut command: impl FnMut() -> Command) -> Result<(Duration, u64), String> {
    let mut times = Vec::new();
    let mut peak = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let (ok, rss) = run_measured(command().stdout(Stdio::null()).stderr(Stdio::null()))?;
        times.push(start.elapsed());
        if !ok {
            return Err(format!("{:?} failed", command()));
        }
        peak = peak.max(rss);
    }
    times.sort();
    Ok((times[times.len() / 2], peak))
}

fn probe(dir: &Path) -> Result<Row, String> {
    let path = dir.join("moov-at-end.mp4");
    let size = big_mp4(&path)?;
    let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
    let mut counting = Counting {
        inner: file,
        bytes: 0,
    };
    kling_core::probe::probe_reader(&mut counting).map_err(|e| e.to_string())?;
    let (ours, rss) = timed(21, || {
        let mut command = Command::new(kling_binary());
        command.arg("validate").arg(&path);
        command
    })?;
    let ffprobe = timed(21, || {
        let mut command = Command::new("ffprobe");
        command.args(["-v", "error", "-show_format"]).arg(&path);
        command
    });
    let (against, ratio) = match ffprobe {
        Ok((theirs, their_rss)) => (
            format!("ffprobe {} ({} peak RSS)", seconds(theirs), mb(their_rss)),
            format!(
                "{:.2}x ffprobe's time",
                ours.as_secs_f64() / theirs.as_secs_f64()
            ),
        ),
        Err(_) => ("ffprobe not installed".to_owned(), "-".to_owned()),
    };
    Ok(Row {
        name: "probe",
        figure: format!(
            "`kling validate` on {}: {}, {} bytes read, {} peak RSS",
            mb(size),
            seconds(ours),
            counting.bytes,
            mb(rss)
        ),
        against,
        ratio,
        target: "at most 0.25x ffprobe",
    })
}

/// The remote probe: `kling validate URL` against `ffprobe URL` on a
/// 165 MB MP4 with its `moov` at the end, served on loopback.
fn remote_probe(dir: &Path) -> Result<Row, String> {
    const RUNS: u32 = 11;
    let path = dir.join("remote-moov-at-end.mp4");
    let (size, moov) = mp4_of(&path, 165_000_000)?;
    let server = crate::range_server::RangeServer::start(&path)?;
    let (ours, _) = timed(RUNS, || {
        let mut command = Command::new(kling_binary());
        command.arg("validate").arg(&server.url);
        command
    })?;
    let (requests, bytes) = server.take_counts();
    let (our_requests, our_bytes) = (requests / u64::from(RUNS), bytes / u64::from(RUNS));
    let ffprobe = timed(RUNS, || {
        let mut command = Command::new("ffprobe");
        command
            .args(["-v", "error", "-show_format"])
            .arg(&server.url);
        command
    });
    let (requests, bytes) = server.take_counts();
    let (against, ratio) = match ffprobe {
        Ok((theirs, _)) => (
            format!(
                "`ffprobe URL` {}, {} requests, {} bytes sent",
                seconds(theirs),
                requests / u64::from(RUNS),
                bytes / u64::from(RUNS)
            ),
            format!(
                "{:.2}x ffprobe's time",
                ours.as_secs_f64() / theirs.as_secs_f64()
            ),
        ),
        Err(_) => ("ffprobe not installed".to_owned(), "-".to_owned()),
    };
    Ok(Row {
        name: "remote probe",
        figure: format!(
            "`kling validate URL` on {} (moov {moov} bytes, at the end): {}, {our_requests} \
             requests, {our_bytes} bytes sent",
            mb(size),
            seconds(ours),
        ),
        against,
        ratio,
        target: "at most 0.5x ffprobe; at most 4 requests and the moov + 1 MiB",
    })
}

/// The provider a figure is measured on: the first in the facade's list
/// that `fits`.
fn provider_where(
    what: &str,
    fits: impl Fn(&Descriptor) -> bool,
) -> Result<&'static Descriptor, String> {
    kling::PROVIDERS
        .iter()
        .find(|p| fits(p))
        .ok_or_else(|| format!("no provider {what}"))
}

fn inline() -> Result<Row, String> {
    let inline = provider_where("sends local files inline", |p| p.capabilities.local_files)?;
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["bench", "-q", "-p", inline.package, "--bench", "inline"])
        .current_dir(root())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| "?".to_owned())
    };
    Ok(Row {
        name: "inline upload",
        figure: format!("peak RSS {} sending 150 MB inline", line("peak RSS")),
        against: "file size 150.0 MB".to_owned(),
        ratio: format!(
            "{} of the file",
            line("peak / file").split(' ').next().unwrap_or("?")
        ),
        target: "peak under 64 MB",
    })
}

/// Jobs of 10, 12 and 14 s on the sandbox, each run by `kling edit` with
/// `--callback-listen` and polled: status requests, and how late each end
/// is seen (the command's whole run, less the job's length), in total and
/// on average. A poll's lag depends on where the job ends between checks,
/// hence three lengths.
fn push(dir: &Path) -> Result<Row, String> {
    const LENGTHS: [u64; 3] = [10, 12, 14];
    let provider = provider_where("that calls back", |p| p.capabilities.callbacks)?;
    let name = provider.name();
    let run = |length: u64, extra: &[&str], tag: &str| -> Result<(u64, Duration), String> {
        let (sandbox, base) = start_sandbox(&["--job-seconds".into(), length.to_string()])?;
        let started = Instant::now();
        let ok = Command::new(kling_binary())
            .args(["--provider", name, "--base-url", &format!("{base}/{name}")])
            .arg("--journal")
            .arg(dir.join(format!("push-{tag}-{length}.sqlite3")))
            .args(extra)
            .args([
                "edit",
                "--video",
                "https://media.example/in.mp4",
                "--no-preflight",
            ])
            .args(["--prompt", "Make it snow on @Video1", "--out"])
            .arg(dir.join(format!("push-{tag}-{length}.mp4")))
            .env(provider.key_variable, "bench")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?
            .success();
        let wall = started.elapsed();
        let stats = stop_sandbox(sandbox, &base);
        if !ok {
            return Err(format!("the {tag} run of a {length} s job failed"));
        }
        let queries = stats[name]["status_queries"].as_u64().unwrap_or(0);
        Ok((queries, wall.saturating_sub(Duration::from_secs(length))))
    };
    let mut pushed = (0, Duration::ZERO);
    let mut polled = (0, Duration::ZERO);
    for length in LENGTHS {
        let (queries, lag) = run(length, &["--callback-listen", "127.0.0.1:0"], "callbacks")?;
        pushed = (pushed.0 + queries, pushed.1 + lag);
        let (queries, lag) = run(length, &[], "polled")?;
        polled = (polled.0 + queries, polled.1 + lag);
    }
    let jobs = u32::try_from(LENGTHS.len()).unwrap_or(1);
    Ok(Row {
        name: "push",
        figure: format!(
            "{} jobs of 10, 12 and 14 s on {} with callbacks: {}, ends seen {} late on average",
            LENGTHS.len(),
            provider.title,
            status_requests(pushed.0),
            seconds(pushed.1 / jobs)
        ),
        against: format!(
            "polled: {}, {} late on average",
            status_requests(polled.0),
            seconds(polled.1 / jobs)
        ),
        ratio: format!(
            "{:.2}x the requests, {:.2}x the lag",
            ratio_of(pushed.0, polled.0),
            pushed.1.as_secs_f64() / polled.1.as_secs_f64().max(0.001)
        ),
        target: "one status request a job; each end seen within a second",
    })
}

/// `a / b` for counts, `b` at least 1.
fn ratio_of(a: u64, b: u64) -> f64 {
    let count = |n: u64| f64::from(u32::try_from(n).unwrap_or(u32::MAX));
    count(a) / count(b.max(1))
}

/// `n status requests`, or `1 status request`.
fn status_requests(n: u64) -> String {
    if n == 1 {
        "1 status request".to_owned()
    } else {
        format!("{n} status requests")
    }
}

/// Status requests and completion lag for a job of `length` under a
/// sequence of delays.
fn simulate(length: Duration, mut delay: impl FnMut(u32) -> Duration) -> (u32, Duration) {
    let mut now = Duration::ZERO;
    let mut checks = 0;
    while now < length {
        now += delay(checks);
        checks += 1;
    }
    (checks, now.saturating_sub(length))
}

fn waiting() -> Row {
    let policy = kling::WaitPolicy::default();
    let mut rng = fastrand::Rng::with_seed(1);
    let job = Duration::from_secs(240);
    let (ours, our_lag) = simulate(job, |check| policy.delay(check, &mut rng));
    let (fixed, fixed_lag) = simulate(job, |_| Duration::from_secs(5));
    // Lag averaged over jobs of 60 to 600 s, where a fixed poll's luck of
    // ending on a multiple of 5 s averages out.
    let (mut our_total, mut fixed_total) = (Duration::ZERO, Duration::ZERO);
    for secs in 60..=600 {
        let length = Duration::from_secs(secs) + Duration::from_millis(secs * 37 % 1000);
        our_total += simulate(length, |check| policy.delay(check, &mut rng)).1;
        fixed_total += simulate(length, |_| Duration::from_secs(5)).1;
    }
    Row {
        name: "waiting",
        figure: format!(
            "240 s job: {ours} status requests, seen {} late (mean lag over 60-600 s jobs {})",
            seconds(our_lag),
            seconds(our_total / 541)
        ),
        against: format!(
            "fixed 5 s poll: {fixed} requests, {} late (mean {})",
            seconds(fixed_lag),
            seconds(fixed_total / 541)
        ),
        ratio: format!("{:.2}x the requests", f64::from(ours) / f64::from(fixed)),
        target: "fewer requests, lag under 10 s",
    }
}

/// `kling sandbox` on a free port with `args` (1 s jobs unless they say
/// otherwise); returns it and its base URL.
pub(crate) fn start_sandbox(args: &[String]) -> Result<(std::process::Child, String), String> {
    let one_second: &[&str] = if args.iter().any(|a| a == "--job-seconds") {
        &[]
    } else {
        &["--job-seconds", "1"]
    };
    let mut sandbox = Command::new(kling_binary())
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .args(one_second)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut base = String::new();
    BufReader::new(sandbox.stdout.take().ok_or("no stdout")?)
        .read_line(&mut base)
        .map_err(|e| e.to_string())?;
    Ok((sandbox, base.trim().to_owned()))
}

/// The sandbox's counters (`Null` when they cannot be read), then the
/// sandbox stopped.
fn stop_sandbox(mut sandbox: std::process::Child, base: &str) -> serde_json::Value {
    let stats = http_get(base, "/_sandbox/stats")
        .ok()
        .and_then(|body| serde_json::from_str(&body).ok())
        .unwrap_or_default();
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    stats
}

/// A batch file of `jobs` edits of remote videos.
pub(crate) fn write_edits(file: &Path, jobs: u32) -> Result<(), String> {
    let mut lines = String::new();
    for i in 0..jobs {
        let _ = writeln!(
            lines,
            "{{\"task\": \"edit\", \"video\": \"https://media.example/{i}.mp4\", \"prompt\": \"Make it snow\"}}"
        );
    }
    std::fs::write(file, lines).map_err(|e| e.to_string())
}

fn scale(dir: &Path) -> Result<Row, String> {
    // A provider that pushes: its waits hold an event stream, the harder case.
    let provider = provider_where("pushes", |p| p.capabilities.push)?;
    let name = provider.name();
    let (sandbox, base) = start_sandbox(&[])?;
    let file = dir.join("scale.jsonl");
    write_edits(&file, 1000)?;
    let start = Instant::now();
    let result = run_measured(
        Command::new(kling_binary())
            .args(["--provider", name, "--base-url", &format!("{base}/{name}")])
            .arg("--journal")
            .arg(dir.join("scale.sqlite3"))
            .args(["batch"])
            .arg(&file)
            // The lines' URLs name no real host: the ledger is measured.
            .args(["--no-preflight", "--concurrency", "64", "--out-dir"])
            .arg(dir.join("scale-out"))
            .env(provider.key_variable, "bench")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let wall = start.elapsed();
    let stats = stop_sandbox(sandbox, &base);
    let (ok, rss) = result?;
    let creates = stats[name]["creates"].as_u64().unwrap_or(0);
    Ok(Row {
        name: "scale",
        figure: format!(
            "1,000 jobs via `kling batch` ({}, 1 s jobs, 64 at once): {}, {} peak RSS, {creates} creates{}",
            provider.title,
            seconds(wall),
            mb(rss),
            if ok { "" } else { " (the batch failed)" }
        ),
        against: "targets 30 s, 200 MB, 1,000 creates".to_owned(),
        ratio: format!(
            "{:.2}x the time, {:.2}x the memory",
            wall.as_secs_f64() / 30.0,
            {
                #[allow(clippy::cast_precision_loss)]
                let ratio = rss as f64 / 200e6;
                ratio
            }
        ),
        target: "under 30 s, under 200 MB, exactly 1,000 creates",
    })
}

/// `kling edit --no-wait --upload URL` of a generated 150 MB MP4, on a
/// provider that fetches inputs by URL: the process's peak RSS while it
/// streams the file to the sandbox's `/uploads` (in another process).
fn post_upload(dir: &Path) -> Result<Row, String> {
    let (ok, rss, size, provider, stats) = upload_peak(dir, None, &[])?;
    let uploads = stats["uploads"].as_u64().unwrap_or(0);
    Ok(upload_row(
        "post upload",
        &format!(
            "`--upload URL` ({provider}, {uploads} upload{})",
            if uploads == 1 { "" } else { "s" }
        ),
        ok,
        rss,
        size,
    ))
}

/// The S3 uploader: `--upload s3://…` to moto's S3 server (`.ci/s3`).
fn s3_upload(dir: &Path) -> Result<Row, String> {
    let server = Throwaway::start("s3", dir.join("s3"))?;
    let bucket = "kling-bench";
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let env = [
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", server.url.as_str()),
    ];
    let (ok, rss, size, provider, _) =
        upload_peak(dir, Some(&format!("s3://{bucket}/inputs")), &env)?;
    Ok(upload_row(
        "s3 upload",
        &format!("`--upload s3://…` to moto's S3 server ({provider}, multipart)"),
        ok,
        rss,
        size,
    ))
}

/// `kling edit --no-wait --upload TARGET` (the sandbox's `/uploads` when
/// `None`) of a generated 150 MB MP4 on a provider that fetches inputs by
/// URL, against a sandbox: whether it passed, its peak RSS, the file's
/// size, the provider's title and what the sandbox counted.
fn upload_peak(
    dir: &Path,
    target: Option<&str>,
    env: &[(&str, &str)],
) -> Result<(bool, u64, u64, &'static str, serde_json::Value), String> {
    let provider = provider_where("that fetches inputs by URL", |p| {
        !p.capabilities.local_files
    })?;
    let name = provider.name();
    let video = dir.join("upload.mp4");
    let size = big_mp4(&video)?;
    let (sandbox, base) = start_sandbox(&[])?;
    let target = target.map_or_else(|| format!("{base}/uploads"), str::to_owned);
    let result = run_measured(
        Command::new(kling_binary())
            .args(["--provider", name, "--base-url", &format!("{base}/{name}")])
            .args(["--upload", &target])
            .arg("--journal")
            .arg(dir.join(format!("upload-{:x}.sqlite3", fastrand::u64(..))))
            .args([
                "edit",
                "--no-wait",
                "--prompt",
                "Make it snow on @Video1",
                "--video",
            ])
            .arg(&video)
            .envs(env.iter().copied())
            .env(provider.key_variable, "bench")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let stats = stop_sandbox(sandbox, &base);
    let (ok, rss) = result?;
    Ok((ok, rss, size, provider.title, stats))
}

/// A row for an uploader's peak memory against the file it sent.
fn upload_row(name: &'static str, how: &str, ok: bool, rss: u64, size: u64) -> Row {
    Row {
        name,
        figure: format!(
            "peak RSS {} sending {} through {how}{}",
            mb(rss),
            mb(size),
            if ok { "" } else { " (the edit failed)" }
        ),
        against: format!("file size {}", mb(size)),
        ratio: format!("{:.3} of the file", {
            #[allow(clippy::cast_precision_loss)]
            let ratio = rss as f64 / size as f64;
            ratio
        }),
        target: "peak under 64 MB",
    }
}

/// A throwaway server started by a script in `.ci` (`postgres`, `s3`):
/// the address it prints, and stopped when dropped.
struct Throwaway {
    script: &'static str,
    dir: PathBuf,
    url: String,
}

impl Throwaway {
    fn start(script: &'static str, dir: PathBuf) -> Result<Throwaway, String> {
        let output = Command::new("bash")
            .arg(root().join(".ci").join(script))
            .arg("start")
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run .ci/{script}: {e}"))?;
        if !output.status.success() {
            return Err(format!("could not start the server of .ci/{script}"));
        }
        let url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(Throwaway { script, dir, url })
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join(".ci").join(self.script))
            .arg("stop")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
    }
}

/// How a batch through `workers` processes went.
struct FleetRun {
    wall: Duration,
    creates: u64,
    statements: u64,
    ok: bool,
}

/// `workers` processes of `kling batch FILE` on `journal` against a fresh
/// sandbox, 64 at once each, all started together.
fn run_fleet(
    provider: &Descriptor,
    journal: &str,
    workers: usize,
    file: &Path,
    out: &Path,
) -> Result<FleetRun, String> {
    let name = provider.name();
    let (sandbox, base) = start_sandbox(&[])?;
    let start = Instant::now();
    let children: Vec<_> = (0..workers)
        .map(|_| {
            Command::new(kling_binary())
                .args(["--provider", name, "--base-url", &format!("{base}/{name}")])
                .args(["--journal", journal, "--json", "batch"])
                .arg(file)
                .args(["--no-preflight", "--concurrency", "64", "--timeout", "600"])
                .arg("--out-dir")
                .arg(out)
                .env(provider.key_variable, "bench")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let (mut ok, mut statements) = (true, 0);
    for child in children {
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        ok &= output.status.success();
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        statements += summary["ledger_statements"].as_u64().unwrap_or(0);
    }
    let wall = start.elapsed();
    let creates = stop_sandbox(sandbox, &base)[name]["creates"]
        .as_u64()
        .unwrap_or(0);
    Ok(FleetRun {
        wall,
        creates,
        statements,
        ok,
    })
}

/// Statements a job, to a tenth, in integers.
fn per_job(statements: u64, jobs: u64) -> String {
    format!("{}.{}", statements / jobs, statements * 10 / jobs % 10)
}

fn fleet(dir: &Path) -> Result<Row, String> {
    const JOBS: u32 = 10_000;
    let provider = provider_where("pushes", |p| p.capabilities.push)?;
    let file = dir.join("fleet.jsonl");
    write_edits(&file, JOBS)?;
    let sqlite = dir.join("fleet.sqlite3");
    let single = run_fleet(
        provider,
        &sqlite.display().to_string(),
        1,
        &file,
        &dir.join("fleet-single"),
    )?;
    let postgres = Throwaway::start("postgres", dir.join("fleet-pg"))?;
    let four = run_fleet(provider, &postgres.url, 4, &file, &dir.join("fleet-four"))?;
    drop(postgres);
    let jobs = u64::from(JOBS);
    let failed = |run: &FleetRun| if run.ok { "" } else { " (a batch failed)" };
    Ok(Row {
        name: "fleet",
        figure: format!(
            "10,000 jobs ({}, 1 s jobs), 4 `kling batch` workers on one PostgreSQL ledger, 64 at \
             once each: {}, {} creates, {} ledger statements a job{}",
            provider.title,
            seconds(four.wall),
            four.creates,
            per_job(four.statements, jobs),
            failed(&four)
        ),
        against: format!(
            "1 process on SQLite, 64 at once: {}, {} creates, {} ledger statements a job{}",
            seconds(single.wall),
            single.creates,
            per_job(single.statements, jobs),
            failed(&single)
        ),
        ratio: format!(
            "{:.2}x the time",
            four.wall.as_secs_f64() / single.wall.as_secs_f64()
        ),
        target: "exactly 10,000 creates each; at most 1x the time; at most 10 statements a job",
    })
}

pub(crate) fn http_get(base: &str, path: &str) -> Result<String, String> {
    let addr = base.strip_prefix("http://").ok_or("not http")?;
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned())
}

/// Distinct packages in `cargo tree` for `args`.
fn packages(args: &[&str]) -> Result<usize, String> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args([
            "tree",
            "--prefix",
            "none",
            "-f",
            "{p}",
            "-e",
            "normal,build",
        ])
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut names: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches(" (*)").trim())
        .filter(|l| !l.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(names.len())
}

fn footprint() -> Result<Row, String> {
    let adapter = provider_where("at all", |_| true)?.package;
    let alone = packages(&["-p", adapter])?;
    let all = packages(&["--workspace", "-e", "dev"])?;
    #[allow(clippy::cast_precision_loss)]
    let ratio = alone as f64 / all as f64;
    Ok(Row {
        name: "footprint",
        figure: format!("{alone} crates for a consumer of {adapter} alone"),
        against: format!("{all} for the whole workspace (dev included)"),
        ratio: format!("{ratio:.2}x"),
        target: "a fraction of the workspace",
    })
}

/// 27 jobs left unfinished by a batch that gave up waiting, all ended at
/// the provider: how long `kling resume` takes to finish them, and how many
/// status queries it asks.
fn resume(dir: &Path) -> Result<Row, String> {
    const JOBS: u32 = 27;
    // A provider that is polled: every status is a query to count.
    let provider = provider_where("that is polled", |p| !p.capabilities.push)?;
    let name = provider.name();
    let (mut sandbox, base) = start_sandbox(&[])?;
    let file = dir.join("resume.jsonl");
    let journal = dir.join("resume.sqlite3");
    write_edits(&file, JOBS)?;
    let kling = |args: &[&str]| {
        let mut command = Command::new(kling_binary());
        command
            .args(["--provider", name, "--base-url", &format!("{base}/{name}")])
            .arg("--journal")
            .arg(&journal)
            .args(args)
            .env(provider.key_variable, "bench")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    // The batch gives up after a second: every job is created, none waited for.
    let _ = kling(&[
        "batch",
        &file.display().to_string(),
        "--no-preflight",
        "--concurrency",
        "32",
        "--timeout",
        "1",
        "--out-dir",
        &dir.join("resume-out").display().to_string(),
    ])
    .status();
    std::thread::sleep(Duration::from_secs(2));
    let queries = |stats: &Result<String, String>| {
        stats
            .as_ref()
            .ok()
            .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok())
            .map(|v| {
                (
                    v[name]["status_queries"].as_u64().unwrap_or(0),
                    v[name]["downloads"].as_u64().unwrap_or(0),
                )
            })
            .unwrap_or_default()
    };
    let (before, _) = queries(&http_get(&base, "/_sandbox/stats"));
    let start = Instant::now();
    let ok = kling(&["resume"])
        .status()
        .map_err(|e| e.to_string())?
        .success();
    let wall = start.elapsed();
    let (after, downloads) = queries(&http_get(&base, "/_sandbox/stats"));
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    Ok(Row {
        name: "resume",
        figure: format!(
            "{JOBS} ended jobs finished by `kling resume`: {}, {} status queries, {downloads} downloads{}",
            seconds(wall),
            after.saturating_sub(before),
            if ok { "" } else { " (resume failed)" }
        ),
        against: "one job at a time, each first checked after 5 s: 4 min 16 s measured before"
            .to_owned(),
        ratio: format!("{:.3}x the time", wall.as_secs_f64() / 256.0),
        target: "under 5 s (one first check), one status query a job",
    })
}

/// Runs every benchmark (or only the row `only`) and prints the table.
pub(crate) fn run(only: Option<&str>) -> Result<(), String> {
    const NAMES: [&str; 11] = [
        "probe",
        "remote-probe",
        "inline",
        "upload",
        "s3-upload",
        "waiting",
        "push",
        "scale",
        "fleet",
        "resume",
        "footprint",
    ];
    if let Some(name) = only.filter(|name| !NAMES.contains(name)) {
        return Err(format!(
            "no bench named {name}; the benches are {}",
            NAMES.join(", ")
        ));
    }
    eprintln!("building the release binary…");
    build_kling()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path();
    let mut rows = Vec::new();
    for name in NAMES
        .into_iter()
        .filter(|name| only.is_none_or(|o| o == *name))
    {
        rows.push(match name {
            "probe" => probe(path)?,
            "remote-probe" => remote_probe(path)?,
            "inline" => inline()?,
            "upload" => post_upload(path)?,
            "s3-upload" => s3_upload(path)?,
            "waiting" => waiting(),
            "push" => push(path)?,
            "scale" => scale(path)?,
            "fleet" => fleet(path)?,
            "resume" => resume(path)?,
            _ => footprint()?,
        });
    }
    println!("| bench | figure | against | ratio | target |");
    println!("| --- | --- | --- | --- | --- |");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.name, row.figure, row.against, row.ratio, row.target
        );
    }
    Ok(())
}
