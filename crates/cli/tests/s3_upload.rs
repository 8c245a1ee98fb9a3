//! `--upload s3://BUCKET/PREFIX`: a local input put into the bucket under
//! its digest, the provider given a presigned URL, credentials and endpoint
//! from the standard environment. Against the S3-compatible server named by
//! `KLING_TEST_S3` (`.ci/s3 start DIR` starts one).

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

/// A raw request to the test server (which takes unsigned ones): the
/// answer's body.
fn request(endpoint: &str, method: &str, path: &str) -> String {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_local_input_goes_to_the_bucket_and_the_job_runs() {
    let Ok(endpoint) = std::env::var("KLING_TEST_S3") else {
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: a_local_input_goes_to_the_bucket_and_the_job_runs: set KLING_TEST_S3 to an \
             S3-compatible server's endpoint (http://127.0.0.1:PORT)"
        );
        return;
    };
    let bucket = format!("kling-cli-{:016x}", fastrand::u64(..));
    assert!(request(&endpoint, "PUT", &format!("/{bucket}")).starts_with("HTTP/1.1 200"));
    let sandbox = support::SandboxProcess::start(&["--job-seconds", "0"]);
    let video = support::root().join("samples/street.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let run = || {
        support::kling_with_journal(&dir.path().join("jobs.sqlite3"))
            .env("SHORTAPI_KEY", "k")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "SECRET-ACCESS-KEY")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .args(["-v", "--provider", "shortapi", "--base-url"])
            .arg(format!("{}/shortapi", sandbox.base))
            .args(["--upload", &format!("s3://{bucket}/inputs")])
            .args([
                "edit",
                "--prompt",
                "Make it snow on @Video1",
                "--overwrite",
                "--video",
            ])
            .arg(&video)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let output = run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("SECRET") && !stderr.contains("X-Amz-Signature"),
        "{stderr}"
    );
    assert!(kling_core::probe::probe_file(&out).is_ok());
    let listing = request(&endpoint, "GET", &format!("/{bucket}?list-type=2"));
    let keys = listing.matches("<Key>").count();
    assert_eq!(keys, 1, "{listing}");
    assert!(listing.contains("<Key>inputs/"), "{listing}");
    assert!(listing.contains(".mp4</Key>"), "{listing}");
    assert_eq!(
        sandbox.stats()["uploads"],
        0,
        "nothing went to the sandbox's store"
    );
    // The same file again: still one object.
    assert!(run().status.success());
    let listing = request(&endpoint, "GET", &format!("/{bucket}?list-type=2"));
    assert_eq!(listing.matches("<Key>").count(), 1, "{listing}");
    // A plain-http endpoint off loopback is refused before anything.
    let refused = support::kling()
        .env("SHORTAPI_KEY", "k")
        .env("AWS_ENDPOINT_URL", "http://storage.example")
        .args(["--provider", "shortapi", "--upload", "s3://b/p"])
        .args(["edit", "--prompt", "Snow on @Video1", "--video"])
        .arg(&video)
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("plain http"));
}
