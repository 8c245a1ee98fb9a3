//! What a hostile or broken server gets from `ApiClient`: no key across a
//! redirect, no unbounded read of a huge answer, typed errors for garbage.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use kling_core::Error;
use kling_http::{ApiClient, RetryPolicy, SecretString};
use serde_json::json;

const CANARY: &str = "sk-kling-canary-5d1f0c7e";

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    with_key: AtomicUsize,
}

fn client(base: &str) -> ApiClient {
    ApiClient::new("shortapi", base, Some(SecretString::from(CANARY)))
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
}

#[tokio::test]
async fn a_redirect_to_another_host_carries_no_key_and_is_not_followed() {
    let elsewhere = Arc::new(Seen::default());
    let other = serve(
        Router::new()
            .fallback(
                |State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    if headers.contains_key(header::AUTHORIZATION) {
                        seen.with_key.fetch_add(1, Ordering::SeqCst);
                    }
                    "{}"
                },
            )
            .with_state(Arc::clone(&elsewhere)),
    )
    .await;
    let target = format!("{other}/steal");
    let redirecting =
        serve(
            Router::new().fallback(move || {
                let target = target.clone();
                async move {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response()
                }
            }),
        )
        .await;
    let api = client(&redirecting);
    let read = api
        .get("/api/v1/job/query", &[("id", "1")])
        .await
        .unwrap_err();
    let create = api
        .create(
            "/api/v1/job/create",
            &json!({}),
            &api.attempt("/api/v1/job/create", "m"),
        )
        .await
        .unwrap_err();
    for err in [&read, &create] {
        assert!(
            matches!(
                err,
                Error::Rejected {
                    status: Some(307),
                    ..
                }
            ),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains(CANARY));
    }
    assert_eq!(elsewhere.requests.load(Ordering::SeqCst), 0);
    assert_eq!(elsewhere.with_key.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn huge_and_garbled_answers_give_typed_errors() {
    // 10 MB of JSON-looking bytes, invalid UTF-8, a wrong type, an HTML page.
    let router = Router::new()
        .route("/huge", get(|| async { "[".repeat(10 << 20) }))
        .route(
            "/binary",
            get(|| async { Body::from(vec![0xff, 0xfe, 0x00, b'{', 0xc3]) }),
        )
        .route("/html", get(|| async { "<html>oops</html>" }))
        .route("/huge-create", post(|| async { "x".repeat(10 << 20) }))
        .route(
            "/huge-error",
            get(|| async { (StatusCode::BAD_REQUEST, "e".repeat(10 << 20)) }),
        );
    let api = client(&serve(router).await);
    for path in ["/huge", "/binary", "/html"] {
        let err = api.get(path, &[]).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Protocol { .. } | Error::Transport { .. } | Error::Unavailable { .. }
            ),
            "{path}: {err:?}"
        );
    }
    let huge = api.get("/huge", &[]).await.unwrap_err();
    let chain = format!("{huge:?}");
    assert!(chain.contains("larger than 1024 KiB"), "{chain}");
    let create = api
        .create(
            "/huge-create",
            &json!({}),
            &api.attempt("/huge-create", "m"),
        )
        .await
        .unwrap_err();
    assert!(create.may_have_been_sent(), "{create}");
    let refused = api.get("/huge-error", &[]).await.unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Rejected {
                status: Some(400),
                ..
            }
        ),
        "{refused}"
    );
}

#[test]
fn plain_http_is_refused_except_on_loopback() {
    for ok in [
        "https://api.shortapi.ai",
        "http://127.0.0.1:8787/shortapi",
        "http://localhost:1",
        "http://[::1]:2/oxen",
    ] {
        assert!(ApiClient::new("shortapi", ok, None).is_ok(), "{ok}");
    }
    for refused in [
        "http://api.shortapi.ai",
        "http://10.0.0.1",
        "ftp://x.example",
        "nonsense",
    ] {
        let err = ApiClient::new("shortapi", refused, None).unwrap_err();
        assert!(err.is_unsupported(), "{refused}: {err}");
    }
}
