//! fal's webhook check against keys this test makes and publishes itself
//! on a loopback JWKS URL: what it takes, what it refuses, and how often
//! it fetches the keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use kling_core::provider::CallbackVerifier;
use kling_fal::WebhookVerifier;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn key_pair() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Headers as fal sends them for `body`, signed by `pair` at `at`.
fn signed(pair: &Ed25519KeyPair, at: u64, body: &[u8]) -> http::HeaderMap {
    let digest = hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
    let message = format!("req-9\nuser-3\n{at}\n{digest}");
    let mut headers = http::HeaderMap::new();
    headers.insert("x-fal-webhook-request-id", "req-9".parse().unwrap());
    headers.insert("x-fal-webhook-user-id", "user-3".parse().unwrap());
    headers.insert("x-fal-webhook-timestamp", at.to_string().parse().unwrap());
    headers.insert(
        "x-fal-webhook-signature",
        hex(pair.sign(message.as_bytes()).as_ref()).parse().unwrap(),
    );
    headers
}

/// Serves `jwks` at any path on a free loopback port, counting requests.
async fn serve_jwks(jwks: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let fetched = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&fetched);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut request = vec![0; 4096];
            let _ = socket.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                jwks.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    (url, fetched)
}

fn jwks(keys: &[&Ed25519KeyPair]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|pair| {
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key());
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x})
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

fn verifier(url: &str) -> WebhookVerifier {
    let api = kling_http::ApiClient::new("fal", "http://127.0.0.1:9", None).unwrap();
    WebhookVerifier::new(api, url)
}

#[tokio::test]
async fn a_call_signed_by_a_published_key_passes_and_the_keys_are_fetched_once() {
    let (old, current) = (key_pair(), key_pair());
    let (url, fetched) = serve_jwks(jwks(&[&old, &current])).await;
    let verifier = verifier(&url);
    let body = br#"{"request_id":"req-9","status":"OK","payload":{"video":{"url":"u"}}}"#;
    for pair in [&old, &current, &current] {
        verifier
            .verify(&signed(pair, now(), body), body)
            .await
            .unwrap();
    }
    assert_eq!(fetched.load(Ordering::SeqCst), 1, "kept for the next calls");
}

#[tokio::test]
async fn forged_tampered_and_stale_calls_are_refused() {
    let (fal, stranger) = (key_pair(), key_pair());
    let (url, fetched) = serve_jwks(jwks(&[&fal])).await;
    let verifier = verifier(&url);
    let body = br#"{"request_id":"req-9","status":"OK"}"#;

    let err = verifier
        .verify(&signed(&stranger, now(), body), body)
        .await
        .unwrap_err();
    assert_eq!(err, "no published key verifies the signature");
    // The same signature over another body.
    let err = verifier
        .verify(&signed(&fal, now(), body), br#"{"status":"ERROR"}"#)
        .await
        .unwrap_err();
    assert_eq!(err, "no published key verifies the signature");
    for at in [now() - 301, now() + 301] {
        let err = verifier
            .verify(&signed(&fal, at, body), body)
            .await
            .unwrap_err();
        assert!(err.contains("at most 300 s"), "{err}");
    }
    let err = verifier
        .verify(&http::HeaderMap::new(), body)
        .await
        .unwrap_err();
    assert!(err.contains("x-fal-webhook-request-id"), "{err}");
    // A failed check fetches the keys again once (a key fal may have
    // rotated in), not on every forged call.
    assert_eq!(fetched.load(Ordering::SeqCst), 1);
    // And the real signature still passes.
    verifier
        .verify(&signed(&fal, now() - 299, body), body)
        .await
        .unwrap();
}

#[tokio::test]
async fn keys_that_cannot_be_read_refuse_the_call_and_say_why() {
    let (url, _) = serve_jwks("{\"keys\": []}".to_owned()).await;
    let body = b"{}";
    let err = verifier(&url)
        .verify(&signed(&key_pair(), now(), body), body)
        .await
        .unwrap_err();
    assert_eq!(err, "the JWKS holds no Ed25519 key");
    let err = verifier("http://127.0.0.1:9/.well-known/jwks.json")
        .verify(&signed(&key_pair(), now(), body), body)
        .await
        .unwrap_err();
    assert!(
        err.starts_with("GET http://127.0.0.1:9/.well-known/jwks.json"),
        "{err}"
    );
}
