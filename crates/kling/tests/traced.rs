//! Every provider's job traced at TRACE level, with a marked key, a signed
//! upload URL and an inline file: the spans and events say what happened,
//! and no field holds the key, a signature or a `data:` URI.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use kling::upload::{PostUploader, Uploader};
use kling::{EditRequest, Error, Media, Request, SecretString, WaitOptions, WaitPolicy};
use kling_sandbox::{Config, Sandbox};

const CANARY: &str = "sk-kling-canary-7c1d9e04";
const SIGNATURE: &str = "X-Amz-Signature=SIGNED-QUERY-3f9a";

/// The sandbox's uploads, handed out as if presigned.
#[derive(Debug)]
struct Signed(PostUploader);

#[async_trait]
impl Uploader for Signed {
    async fn upload(&self, media: &Media) -> Result<String, Error> {
        Ok(format!("{}?{SIGNATURE}", self.0.upload(media).await?))
    }
}

/// Everything written, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

#[tokio::test]
async fn a_trace_of_every_provider_holds_no_key_signature_or_data_uri() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // This test's thread only (the runtime is current-thread).
    let traced = tracing::subscriber::set_default(subscriber);
    let sandbox = Sandbox::start(Config::default().job_duration(Duration::from_millis(100)))
        .await
        .unwrap();
    let video = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/street.mp4");
    let dir = tempfile::tempdir().unwrap();
    let fast = WaitOptions::default().policy(WaitPolicy {
        first_check: Duration::from_millis(200),
        max_interval: Duration::from_millis(200),
        ..WaitPolicy::default()
    });
    for descriptor in kling::PROVIDERS {
        let name = descriptor.name();
        let base = format!("{}/{name}", sandbox.base_url());
        let adapter = descriptor
            .connect(&base, SecretString::from(CANARY))
            .unwrap();
        let mut client = kling::Client::from_arc(adapter);
        if !descriptor.capabilities.takes_local_files() {
            let uploads = PostUploader::new(format!("{}/uploads", sandbox.base_url()));
            client = client.with_uploader(Arc::new(Signed(uploads)));
        }
        let request = Request::from(EditRequest::new(
            Media::file(&video),
            "Make it snow on @Video1",
        ));
        let checked = client.validate(&request).unwrap();
        let job = client.submit(&checked).await.unwrap();
        let done = client.wait(&job, &fast).await.unwrap();
        client
            .download(&job, &done, &dir.path().join(format!("{name}.mp4")))
            .await
            .unwrap();
    }
    drop(traced);
    let trace = captured.text();
    for said in [
        "submit",
        "job created",
        "wait",
        "status",
        "download",
        "uploaded",
    ] {
        assert!(trace.contains(said), "no {said:?} in the trace:\n{trace}");
    }
    for descriptor in kling::PROVIDERS {
        assert!(
            trace.contains(descriptor.name()),
            "nothing of {}",
            descriptor.name()
        );
    }
    assert!(!trace.contains(CANARY), "the key in the trace:\n{trace}");
    assert!(
        !trace.contains("SIGNED-QUERY"),
        "a signature in the trace:\n{trace}"
    );
    assert!(
        !trace.contains("data:"),
        "a data URI in the trace:\n{trace}"
    );
}
