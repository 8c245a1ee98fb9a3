//! A 150 MB local video sent inline to the sandbox comes back as the
//! result byte for byte. (`cargo bench -p kling-aimlapi --bench inline`
//! measures the memory it takes.)

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use kling_aimlapi::AimlApi;
use kling_core::provider::Provider as _;
use kling_core::{EditRequest, JobState, Media};
use kling_http::{RetryPolicy, TokioClock};
use kling_sandbox::{Config, Provider, Sandbox};

/// Reads until `buffer` is full or the file ends; returns the count.
fn fill(file: &mut std::fs::File, buffer: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]).unwrap() {
            0 => break,
            read => filled += read,
        }
    }
    filled
}

fn same_content(left: &std::path::Path, right: &std::path::Path) -> bool {
    let mut left = std::fs::File::open(left).unwrap();
    let mut right = std::fs::File::open(right).unwrap();
    let mut ours = vec![0; 1 << 20];
    let mut theirs = vec![0; 1 << 20];
    loop {
        let read = fill(&mut left, &mut ours);
        if read != fill(&mut right, &mut theirs) || ours[..read] != theirs[..read] {
            return false;
        }
        if read == 0 {
            return true;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_150_mb_video_goes_inline_and_comes_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.mp4");
    kling_sandbox::write_padded_video(&input, 150_000_000).unwrap();

    let sandbox = Sandbox::start(Config::default().job_duration(Duration::from_millis(100)))
        .await
        .unwrap();
    let aimlapi = AimlApi::with_base_url(&sandbox.url(Provider::AimlApi), "k".into()).unwrap();
    let request = EditRequest::new(Media::file(&input), "Make @Video1 snowy").into();
    let job = kling_sandbox::submit(&aimlapi, &request).await.unwrap();

    let mut url = None;
    for _ in 0..100 {
        if let JobState::Succeeded { outputs, .. } = aimlapi.status(&job).await.unwrap().state {
            url = outputs.into_iter().next();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = url.expect("the job ended within 10 s");
    let output = dir.path().join("out.mp4");
    let size = kling_http::download(
        &url,
        &output,
        RetryPolicy::default(),
        Arc::new(TokioClock::new()),
    )
    .await
    .unwrap();
    assert_eq!(size, 150_000_000);
    assert!(
        same_content(&input, &output),
        "the echo differs from the input"
    );
    assert_eq!(sandbox.stats()["aimlapi"].creates, 1);
}
