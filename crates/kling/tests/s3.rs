//! `S3Uploader` against a real S3-compatible server on loopback (the one
//! `.ci/s3` starts; `KLING_TEST_S3` names its endpoint): content-addressed
//! keys, no second upload of the same content, multipart for large files,
//! and presigned URLs that serve the bytes.

use std::io::Write as _;
use std::time::Duration;

use kling::Media;
use kling::Uploader as _;
use kling::upload::S3Uploader;
use kling::upload::object_store::aws::AmazonS3Builder;
use sha2::{Digest as _, Sha256};

/// The test server's endpoint, or `None`, said loudly.
fn endpoint(test: &str) -> Option<String> {
    let found = std::env::var("KLING_TEST_S3").ok();
    if found.is_none() {
        // Straight to the terminal: a check that did not run must not look
        // like one that passed.
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: {test}: set KLING_TEST_S3 to an S3-compatible server's endpoint \
             (http://127.0.0.1:PORT; `.ci/s3 start DIR` starts one)"
        );
    }
    found
}

/// A fresh bucket on the server, and an uploader into it.
async fn bucket(endpoint: &str) -> (String, S3Uploader) {
    let name = format!("kling-test-{:016x}", fastrand::u64(..));
    // The test server takes an unsigned create.
    let created = http()
        .put(format!("{endpoint}/{name}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let builder = AmazonS3Builder::new()
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_endpoint(endpoint);
    let uploader = S3Uploader::with_builder(&format!("s3://{name}/inputs"), builder)
        .unwrap()
        .expiry(Duration::from_secs(3600));
    (name, uploader)
}

/// A client with this crate's TLS settings.
fn http() -> reqwest::Client {
    kling_http::client_builder().build().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// What a URL serves, and its `Last-Modified`.
async fn fetch(url: &str) -> (Vec<u8>, String) {
    let answer = http().get(url).send().await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let modified = answer
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (answer.bytes().await.unwrap().to_vec(), modified)
}

#[tokio::test]
async fn a_file_is_put_under_its_digest_once_and_served_by_a_presigned_url() {
    let Some(endpoint) = endpoint("a_file_is_put_under_its_digest_once") else {
        return;
    };
    let (name, uploader) = bucket(&endpoint).await;
    let video = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/street.mp4");
    let bytes = std::fs::read(&video).unwrap();
    let url = uploader.upload(&Media::file(&video)).await.unwrap();
    let key = format!("/{name}/inputs/{}.mp4", sha256(&bytes));
    assert!(url.starts_with(&format!("{endpoint}{key}?")), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(url.contains("X-Amz-Expires=3600"), "{url}");
    let (served, first) = fetch(&url).await;
    assert_eq!(served, bytes);
    // The same content again, as bytes this time: the object is not
    // written again (its Last-Modified, to the second, stays).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = uploader
        .upload(&Media::bytes(bytes.clone(), None))
        .await
        .unwrap();
    assert!(again.starts_with(&format!("{endpoint}{key}?")), "{again}");
    let (_, second) = fetch(&again).await;
    assert_eq!(first, second, "uploaded again");
}

#[tokio::test]
async fn a_large_file_goes_up_in_parts_and_comes_back_whole() {
    let Some(endpoint) = endpoint("a_large_file_goes_up_in_parts") else {
        return;
    };
    let (_, uploader) = bucket(&endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mp4");
    // 20 MB: three parts of 8 MiB.
    kling_sandbox::write_padded_video(&path, 20_000_000).unwrap();
    let url = uploader.upload(&Media::file(&path)).await.unwrap();
    let (served, _) = fetch(&url).await;
    assert_eq!(served.len(), 20_000_000);
    assert_eq!(sha256(&served), sha256(&std::fs::read(&path).unwrap()));
}

#[tokio::test]
async fn a_missing_bucket_is_an_upload_error_that_created_nothing() {
    let Some(endpoint) = endpoint("a_missing_bucket_is_an_upload_error") else {
        return;
    };
    let builder = AmazonS3Builder::new()
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_endpoint(&endpoint);
    let uploader = S3Uploader::with_builder("s3://kling-no-such-bucket/x", builder).unwrap();
    let error = uploader
        .upload(&Media::bytes(vec![1u8; 100], None))
        .await
        .unwrap_err();
    assert!(!error.may_have_been_sent(), "{error}");
    assert!(error.to_string().contains("no job was created"), "{error}");
}
