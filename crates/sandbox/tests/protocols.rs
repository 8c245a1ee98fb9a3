//! The sandbox driven by a plain HTTP client, as a provider's user would:
//! every model, every published constraint, every fault.

use std::time::{Duration, Instant};

use base64::Engine as _;
use kling_sandbox::{Config, Fault, FaultKind, Operation, Provider, Sandbox};
use reqwest::StatusCode;
use serde_json::{Value, json};

const KEY: &str = "Bearer sandbox-test-key";
/// fal's scheme for the key.
const FAL_KEY: &str = "Key sandbox-test-key";

/// The `Authorization` header for a URL of the sandbox: fal's routes want
/// `Key`, the others `Bearer`.
fn key_for(url: &str) -> &'static str {
    if url.contains("/fal/") { FAL_KEY } else { KEY }
}

fn client() -> reqwest::Client {
    kling_http::client_builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A sandbox whose clock moves only when the test says.
async fn manual(config: Config) -> Sandbox {
    Sandbox::start(config.manual_clock().job_duration(Duration::from_secs(8)))
        .await
        .unwrap()
}

async fn post(url: &str, body: &Value) -> (StatusCode, Value) {
    let response = client()
        .post(url)
        .header("Authorization", key_for(url))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str) -> (StatusCode, Value) {
    let response = client()
        .get(url)
        .header("Authorization", key_for(url))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

const VIDEO: &str = "https://media.example/in.mp4";
const IMAGE: &str = "https://media.example/a.png";

/// The endpoint fal's bodies below are submitted to, unless they name one.
const FAL_EDIT: &str = "fal-ai/kling-video/o1/video-to-video/edit";

/// A valid create body for each emulated model, and where its job id and
/// status are found. fal's model is in the URL: its entries are
/// `{"endpoint", "input"}`.
fn valid_bodies() -> Vec<(Provider, Value)> {
    vec![
        (
            Provider::ShortApi,
            json!({"model": "kwaivgi/kling-o1/video-to-video", "args": {"mode": "pro", "action": "edit", "prompt": "make it snow", "video": VIDEO, "keep_audio": false}}),
        ),
        (
            Provider::ShortApi,
            json!({"model": "kwaivgi/kling-o3/video-to-video", "args": {"mode": "std", "action": "refer", "prompt": "fly over", "video": VIDEO, "duration": 7, "aspect_ratio": "9:16"}}),
        ),
        (
            Provider::ShortApi,
            json!({"model": "kwaivgi/kling-o1/image-to-video", "args": {"mode": "pro", "action": "frame", "prompt": "bloom", "images": [IMAGE], "duration": "10"}}),
        ),
        (
            Provider::AimlApi,
            json!({"model": "klingai/video-o1-video-to-video-edit", "prompt": "make it snow", "video_url": VIDEO, "keep_audio": true}),
        ),
        (
            Provider::AimlApi,
            json!({"model": "klingai/video-o1-video-to-video-reference", "prompt": "fly", "video_url": VIDEO, "duration": 10, "aspect_ratio": "1:1"}),
        ),
        (
            Provider::AimlApi,
            json!({"model": "klingai/video-o1-reference-to-video", "prompt": "walk", "image_list": [IMAGE], "duration": 5}),
        ),
        (
            Provider::AimlApi,
            json!({"model": "klingai/video-o1-image-to-video", "prompt": "bloom", "image_url": IMAGE, "last_image_url": IMAGE, "duration": 5}),
        ),
        (
            Provider::Oxen,
            json!({"model": "kling-video-o1-video-to-video-edit", "prompt": "make it snow", "input_video": VIDEO, "input_image": [IMAGE], "keep_audio": false}),
        ),
        (
            Provider::Oxen,
            json!({"model": "kling-video-o1-image-to-video", "prompt": "bloom", "input_image": IMAGE, "duration": 5}),
        ),
        (
            Provider::Oxen,
            json!({"model": "kling-video-o1-reference-to-video", "prompt": "walk", "input_image": [IMAGE], "duration": 10}),
        ),
        (
            Provider::Oxen,
            json!({"model": "kling-video-o3-omni", "prompt": "fly", "video_mode": "reference", "input_video": VIDEO, "duration": 12}),
        ),
        (
            Provider::Fal,
            json!({"endpoint": FAL_EDIT, "input": {"prompt": "make it snow", "video_url": VIDEO, "keep_audio": false}}),
        ),
        (
            Provider::Fal,
            json!({"endpoint": "fal-ai/kling-video/o1/standard/image-to-video", "input": {"prompt": "bloom", "start_image_url": IMAGE, "end_image_url": IMAGE, "duration": "7"}}),
        ),
        (
            Provider::Fal,
            json!({"endpoint": "fal-ai/kling-video/o3/pro/video-to-video/reference", "input": {"prompt": "fly over @Video1", "video_url": VIDEO, "keep_audio": true, "aspect_ratio": "9:16", "duration": "10"}}),
        ),
    ]
}

fn create_url(sandbox: &Sandbox, provider: Provider) -> String {
    let base = sandbox.url(provider);
    match provider {
        Provider::ShortApi => format!("{base}/api/v1/job/create"),
        Provider::AimlApi => format!("{base}/v2/video/generations"),
        Provider::Fal => format!("{base}/{FAL_EDIT}"),
        _ => format!("{base}/api/ai/queue"),
    }
}

/// Creates a job and returns its id, asserting the provider's success shape.
async fn create(sandbox: &Sandbox, provider: Provider, body: &Value) -> String {
    let (status, answer) = match body["endpoint"].as_str() {
        Some(endpoint) if provider == Provider::Fal => {
            post(
                &format!("{}/{endpoint}", sandbox.url(provider)),
                &body["input"],
            )
            .await
        }
        _ => post(&create_url(sandbox, provider), body).await,
    };
    assert_eq!(status, StatusCode::OK, "{answer}");
    match provider {
        Provider::ShortApi => {
            assert_eq!(answer["code"], 0, "{answer}");
            assert!(answer["data"]["amount"].is_string());
            answer["data"]["job_id"].as_str().unwrap().to_owned()
        }
        Provider::AimlApi => {
            assert_eq!(answer["status"], "queued");
            answer["id"].as_str().unwrap().to_owned()
        }
        Provider::Fal => {
            assert_eq!(answer["status"], "IN_QUEUE", "{answer}");
            answer["request_id"].as_str().unwrap().to_owned()
        }
        _ => {
            assert_eq!(answer["generations"][0]["status"], "queued");
            answer["generations"][0]["generation_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    }
}

/// The provider's status word for a job, and its result URL or error.
async fn status(sandbox: &Sandbox, provider: Provider, id: &str) -> (String, Option<String>) {
    let base = sandbox.url(provider);
    match provider {
        Provider::ShortApi => {
            let (_, answer) = get(&format!("{base}/api/v1/job/query?id={id}")).await;
            let data = &answer["data"];
            let url = data["result"]["videos"][0]["url"]
                .as_str()
                .map(str::to_owned);
            (
                data["status"].to_string(),
                url.or_else(|| data["message"].as_str().map(str::to_owned)),
            )
        }
        Provider::AimlApi => {
            let (_, answer) = get(&format!("{base}/v2/video/generations?generation_id={id}")).await;
            let url = answer["video"]["url"].as_str().map(str::to_owned);
            (
                answer["status"].as_str().unwrap().to_owned(),
                url.or_else(|| answer["error"]["message"].as_str().map(str::to_owned)),
            )
        }
        Provider::Fal => {
            let request = format!("{base}/fal-ai/kling-video/requests/{id}");
            let (_, answer) = get(&format!("{request}/status")).await;
            let word = answer["status"].as_str().unwrap().to_owned();
            let error = answer["error"].as_str().map(str::to_owned);
            if word == "COMPLETED" && error.is_none() {
                let (_, result) = get(&request).await;
                return (word, result["video"]["url"].as_str().map(str::to_owned));
            }
            (word, error)
        }
        _ => {
            let (_, answer) = get(&format!("{base}/api/ai/queue/{id}")).await;
            let url = answer["result_url"].as_str().map(str::to_owned);
            (
                answer["status"].as_str().unwrap().to_owned(),
                url.or_else(|| answer["error_message"].as_str().map(str::to_owned)),
            )
        }
    }
}

fn sequence(provider: Provider) -> [&'static str; 3] {
    match provider {
        Provider::ShortApi => ["0", "1", "2"],
        Provider::AimlApi => ["queued", "generating", "completed"],
        Provider::Fal => ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"],
        _ => ["queued", "processing", "succeeded"],
    }
}

#[tokio::test]
async fn every_model_accepts_a_valid_body_and_completes_through_its_status_sequence() {
    let sandbox = manual(Config::default()).await;
    for (provider, body) in valid_bodies() {
        let id = create(&sandbox, provider, &body).await;
        let [queued, running, done] = sequence(provider);
        assert_eq!(status(&sandbox, provider, &id).await.0, queued, "{body}");
        sandbox.advance(Duration::from_secs(2));
        assert_eq!(status(&sandbox, provider, &id).await.0, running, "{body}");
        sandbox.advance(Duration::from_secs(6));
        let (word, url) = status(&sandbox, provider, &id).await;
        assert_eq!(word, done, "{body}");
        let bytes = client()
            .get(url.unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        match kling_core::probe::probe_reader(std::io::Cursor::new(&bytes[..])).unwrap() {
            kling_core::probe::Probed::Video(video) => {
                assert_eq!(video.duration, Duration::from_secs(5));
            }
            other @ kling_core::probe::Probed::Image(_) => panic!("not a video: {other:?}"),
        }
    }
    let stats = sandbox.stats();
    assert_eq!(
        (
            stats["shortapi"].creates,
            stats["aimlapi"].creates,
            stats["oxen"].creates
        ),
        (3, 4, 4)
    );
    assert_eq!(
        stats["shortapi"].downloads + stats["aimlapi"].downloads + stats["oxen"].downloads,
        11
    );
    assert_eq!(stats["shortapi"].downloads_with_auth, 0);
    sandbox.stop().await;
}

#[tokio::test]
async fn shortapi_refuses_broken_bodies_with_a_nonzero_code() {
    let sandbox = manual(Config::default()).await;
    let url = create_url(&sandbox, Provider::ShortApi);
    for (body, expected) in [
        // O1's duration is a string, O3's an integer.
        (
            json!({"model": "kwaivgi/kling-o1/video-to-video", "args": {"mode": "pro", "action": "refer", "prompt": "p", "video": VIDEO, "duration": 5}}),
            "/args/duration: 5 is not of type \"string\"",
        ),
        (
            json!({"model": "kwaivgi/kling-o3/video-to-video", "args": {"prompt": "p", "video": VIDEO, "duration": "5"}}),
            "/args/duration: \"5\" is not of type \"integer\"",
        ),
        // O3 publishes no keep_audio.
        (
            json!({"model": "kwaivgi/kling-o3/video-to-video", "args": {"prompt": "p", "video": VIDEO, "keep_audio": true}}),
            "keep_audio",
        ),
        (
            json!({"model": "kwaivgi/kling-o1/video-to-video", "args": {"mode": "pro", "action": "edit", "prompt": "p"}}),
            "\"video\" is a required property",
        ),
        (
            json!({"model": "kwaivgi/kling-o1/video-to-video", "args": {"mode": "ultra", "action": "edit", "prompt": "p", "video": VIDEO}}),
            "/args/mode",
        ),
        // A single frame animates for 5 or 10 seconds only.
        (
            json!({"model": "kwaivgi/kling-o1/image-to-video", "args": {"mode": "pro", "action": "frame", "prompt": "p", "images": [IMAGE], "duration": "7"}}),
            "/args/duration",
        ),
        (
            json!({"model": "kwaivgi/kling-o9", "args": {}}),
            "unknown model \"kwaivgi/kling-o9\"",
        ),
    ] {
        let (status, answer) = post(&url, &body).await;
        assert_eq!(status, StatusCode::OK, "ShortAPI refuses with HTTP 200");
        assert_ne!(answer["code"], 0, "{body}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{message} should mention {expected}"
        );
    }
    // Two frames may run for 7 seconds.
    let two = json!({"model": "kwaivgi/kling-o1/image-to-video", "args": {"mode": "pro", "action": "frame", "prompt": "p", "images": [IMAGE, IMAGE], "duration": "7"}});
    create(&sandbox, Provider::ShortApi, &two).await;
    assert_eq!(sandbox.stats()["shortapi"].rejected, 7);
    sandbox.stop().await;
}

#[tokio::test]
async fn aimlapi_refuses_broken_bodies_with_its_400() {
    let sandbox = manual(Config::default()).await;
    let url = create_url(&sandbox, Provider::AimlApi);
    for (body, expected) in [
        (
            json!({"model": "klingai/video-o1-video-to-video-edit", "prompt": "p"}),
            "\"video_url\" is a required property",
        ),
        (
            json!({"model": "klingai/video-o1-video-to-video-reference", "prompt": "p", "video_url": VIDEO, "duration": 7}),
            "/duration",
        ),
        (
            json!({"model": "klingai/video-o1-reference-to-video", "prompt": "p", "aspect_ratio": "4:3"}),
            "/aspect_ratio",
        ),
        (
            json!({"model": "klingai/video-o1-video-to-video-edit", "prompt": "x".repeat(2501), "video_url": VIDEO}),
            "/prompt",
        ),
        (
            json!({"model": "klingai/video-o1-image-to-video", "prompt": "p", "image_url": IMAGE, "mode": "pro"}),
            "mode",
        ),
        (
            json!({"model": "klingai/video-o1-video-to-video-edit", "prompt": "p", "video_url": VIDEO,
                "elements": [{"frontal_image_url": IMAGE, "reference_image_urls": []}]}),
            "/elements/0/reference_image_urls",
        ),
    ] {
        let (status, answer) = post(&url, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["statusCode"], 400);
        assert_eq!(answer["path"], "/v2/video/generations");
        assert!(answer["requestId"].is_string() && answer["timestamp"].is_string());
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{message} should mention {expected}"
        );
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn oxen_accepts_bad_parameters_then_fails_the_job() {
    let sandbox = manual(Config::default()).await;
    let url = create_url(&sandbox, Provider::Oxen);
    // The envelope is checked at once.
    let (code, answer) = post(
        &url,
        &json!({"model": "kling-video-o1-video-to-video-edit"}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(answer["status"], "error");
    assert!(
        answer["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("\"prompt\" is a required property")
    );
    // The model's parameters only when the job runs.
    let id = create(
        &sandbox,
        Provider::Oxen,
        &json!({"model": "kling-video-o1-video-to-video-edit", "prompt": "p", "keep_audio": "yes"}),
    )
    .await;
    sandbox.advance(Duration::from_secs(8));
    let (word, error) = status(&sandbox, Provider::Oxen, &id).await;
    assert_eq!(word, "failed");
    let error = error.unwrap();
    assert!(error.starts_with("invalid parameters: "), "{error}");
    assert!(
        error.contains("\"input_video\" is a required property") && error.contains("/keep_audio"),
        "{error}"
    );
    // Unknown ids are 404 in Oxen's error shape.
    let (code, answer) = get(&format!(
        "{}/api/ai/queue/nope",
        sandbox.url(Provider::Oxen)
    ))
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["type"], "not_found");
    sandbox.stop().await;
}

#[tokio::test]
async fn a_missing_key_gets_each_providers_401() {
    let sandbox = manual(Config::default()).await;
    for &provider in Provider::ALL {
        let response = client()
            .post(create_url(&sandbox, provider))
            .header("Authorization", "Bearer ")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{provider}");
        let body: Value = response.json().await.unwrap();
        let shape_ok = match provider {
            Provider::ShortApi => body["code"] == 401,
            Provider::AimlApi => body["statusCode"] == 401 && body["message"].is_string(),
            Provider::Fal => body["detail"].is_string(),
            _ => body["status"] == "error" && body["error"]["type"] == "unauthorized",
        };
        assert!(shape_ok, "{provider}: {body}");
        let empty = client()
            .get(format!(
                "{}/v2/video/generations?generation_id=x",
                sandbox.url(Provider::AimlApi)
            ))
            .header("Authorization", "Bearer  ")
            .send()
            .await
            .unwrap();
        assert_eq!(empty.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(sandbox.stats()["shortapi"].creates, 0);
    sandbox.stop().await;
}

#[tokio::test]
async fn inline_and_uploaded_videos_are_echoed() {
    let sandbox = Sandbox::start(Config::default().job_duration(Duration::ZERO))
        .await
        .unwrap();
    let video: Vec<u8> = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/fixtures/moov_at_end.mp4"
    ))
    .unwrap();
    let data_uri = format!(
        "data:video/mp4;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&video)
    );
    let id = create(&sandbox, Provider::AimlApi, &json!({"model": "klingai/video-o1-video-to-video-edit", "prompt": "p", "video_url": data_uri})).await;
    let (_, url) = status(&sandbox, Provider::AimlApi, &id).await;
    let echoed = client()
        .get(url.unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&echoed[..], &video[..]);

    let upload: Value = client()
        .post(format!("{}/uploads", sandbox.base_url()))
        .body(video.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uploaded = upload["url"].as_str().unwrap();
    let id = create(&sandbox, Provider::Oxen, &json!({"model": "kling-video-o1-video-to-video-edit", "prompt": "p", "input_video": uploaded})).await;
    let (_, url) = status(&sandbox, Provider::Oxen, &id).await;
    let echoed = client()
        .get(url.unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&echoed[..], &video[..]);
    assert_eq!(sandbox.stats().uploads, 1);

    // Ranges are honoured, for resumed downloads.
    let tail = client()
        .get(status(&sandbox, Provider::Oxen, &id).await.1.unwrap())
        .header("Range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&tail.bytes().await.unwrap()[..], &video[100..]);
    sandbox.stop().await;
}

#[tokio::test]
async fn shortapi_posts_its_callback() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!(
        "http://{}/hook?token=s3cret",
        listener.local_addr().unwrap()
    );
    let sandbox = Sandbox::start(Config::default().job_duration(Duration::from_millis(200)))
        .await
        .unwrap();
    let id = create(&sandbox, Provider::ShortApi, &json!({"model": "kwaivgi/kling-o1/video-to-video", "args": {"mode": "pro", "action": "edit", "prompt": "p", "video": VIDEO}, "callback_url": callback})).await;
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&request).contains("\"code\"") || !request.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "callback closed early");
        request.extend_from_slice(&buf[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let request = String::from_utf8(request).unwrap();
    assert!(
        request.starts_with("POST /hook?token=s3cret HTTP/1.1"),
        "{request}"
    );
    let body: Value =
        serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["data"]["status"], 2);
    assert!(
        body["data"]["result"]["videos"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(sandbox.base_url())
    );
    assert_eq!(status(&sandbox, Provider::ShortApi, &id).await.0, "2");
    sandbox.stop().await;
}

/// Reads SSE frames until one for `id` of type `media_generation_completed`.
async fn completion_event(
    response: &mut reqwest::Response,
    id: &str,
    seen: &mut Vec<String>,
) -> Value {
    let mut buffer = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let event = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_owned();
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "));
            seen.push(if event.is_empty() {
                frame.trim().to_owned()
            } else {
                event.clone()
            });
            if event == "media_generation_completed"
                && let Some(data) = data
            {
                let data: Value = serde_json::from_str(data).unwrap();
                if data["generation_id"] == id {
                    return data;
                }
            }
        }
    }
}

#[tokio::test]
async fn oxen_streams_completions_and_cancels() {
    let sandbox = Sandbox::start(
        Config::default()
            .job_duration(Duration::from_millis(300))
            .keep_alive(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let mut events = client()
        .get(format!("{}/api/events", sandbox.url(Provider::Oxen)))
        .header("Authorization", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let body =
        json!({"model": "kling-video-o1-video-to-video-edit", "prompt": "p", "input_video": VIDEO});
    let id = create(&sandbox, Provider::Oxen, &body).await;
    let mut seen = Vec::new();
    let event = completion_event(&mut events, &id, &mut seen).await;
    assert_eq!(event["status"], "succeeded");
    assert!(
        event["url"]
            .as_str()
            .unwrap()
            .starts_with(sandbox.base_url())
    );
    assert!(
        seen.iter().any(|e| e == "media_generation_started"),
        "other event types appear: {seen:?}"
    );

    // Cancel a job while it runs: it ends cancelled and sends no completion.
    let slow = Sandbox::start(
        Config::default()
            .manual_clock()
            .job_duration(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let id = create(&slow, Provider::Oxen, &body).await;
    let response = client()
        .delete(format!("{}/api/ai/queue/{id}", slow.url(Provider::Oxen)))
        .header("Authorization", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "success", "generation_id": id})
    );
    slow.advance(Duration::from_secs(120));
    assert_eq!(status(&slow, Provider::Oxen, &id).await.0, "cancelled");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slow.stats()["oxen"].events, 0);
    assert_eq!(slow.stats()["oxen"].cancels, 1);
    slow.stop().await;
    sandbox.stop().await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_answer_in_each_providers_shape() {
    for (kind, code) in [
        (FaultKind::RateLimit, 429),
        (FaultKind::ServerError(500), 500),
        (FaultKind::ServerError(502), 502),
        (FaultKind::ServerError(503), 503),
    ] {
        // One hit per provider, then the fault is spent.
        let every = u32::try_from(Provider::ALL.len()).unwrap();
        let sandbox =
            manual(Config::default().fault(Fault::new(kind).times(every).on(Operation::Status)))
                .await;
        for &provider in Provider::ALL {
            let (_, body) = valid_bodies()
                .into_iter()
                .find(|(p, _)| *p == provider)
                .unwrap();
            let id = create(&sandbox, provider, &body).await;
            let url = match provider {
                Provider::ShortApi => format!("{}/api/v1/job/query?id={id}", sandbox.url(provider)),
                Provider::AimlApi => format!(
                    "{}/v2/video/generations?generation_id={id}",
                    sandbox.url(provider)
                ),
                Provider::Fal => format!(
                    "{}/fal-ai/kling-video/requests/{id}/status",
                    sandbox.url(provider)
                ),
                _ => format!("{}/api/ai/queue/{id}", sandbox.url(provider)),
            };
            let response = client()
                .get(&url)
                .header("Authorization", key_for(&url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), code, "{provider}");
            if code == 429 {
                assert_eq!(response.headers()["retry-after"], "1");
            }
        }
        let stats = sandbox.stats();
        assert_eq!(
            Provider::ALL
                .iter()
                .map(|p| stats.of(*p).faults)
                .sum::<u64>(),
            u64::from(every)
        );
        let (_, body) = &valid_bodies()[0];
        let id = create(&sandbox, Provider::ShortApi, body).await;
        assert_eq!(status(&sandbox, Provider::ShortApi, &id).await.0, "0");
        sandbox.stop().await;
    }
}

#[tokio::test]
async fn a_dropped_create_may_still_have_made_the_job() {
    let sandbox = manual(
        Config::default().fault(
            Fault::new(FaultKind::Drop)
                .times(1)
                .provider(Provider::ShortApi)
                .on(Operation::Create),
        ),
    )
    .await;
    let (_, body) = &valid_bodies()[0];
    let err = client()
        .post(create_url(&sandbox, Provider::ShortApi))
        .header("Authorization", KEY)
        .json(body)
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_connect(), "the request was sent: {err:?}");
    let stats = sandbox.stats()["shortapi"];
    assert_eq!((stats.creates, stats.faults), (1, 1));
    sandbox.stop().await;
}

#[tokio::test]
async fn slow_answers_take_their_delay() {
    let sandbox = manual(
        Config::default()
            .fault(Fault::new(FaultKind::Slow(Duration::from_millis(400))).on(Operation::Create)),
    )
    .await;
    let started = Instant::now();
    create(&sandbox, Provider::Oxen, &valid_bodies()[7].1).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    sandbox.stop().await;
}

#[tokio::test]
async fn failed_jobs_end_failed_in_each_providers_words() {
    let sandbox = manual(Config::default().fault(Fault::new(FaultKind::FailJob))).await;
    for &provider in Provider::ALL {
        let (_, body) = valid_bodies()
            .into_iter()
            .find(|(p, _)| *p == provider)
            .unwrap();
        let id = create(&sandbox, provider, &body).await;
        sandbox.advance(Duration::from_secs(8));
        let (word, reason) = status(&sandbox, provider, &id).await;
        let expected = match provider {
            Provider::ShortApi => "3",
            Provider::AimlApi => "error",
            Provider::Fal => "COMPLETED",
            _ => "failed",
        };
        assert_eq!(word, expected);
        assert!(reason.unwrap().contains("fault `fail`"));
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn expired_result_urls_come_back_fresh_after_a_status_query() {
    let sandbox = Sandbox::start(
        Config::default()
            .job_duration(Duration::ZERO)
            .fault(Fault::new(FaultKind::ExpireUrl)),
    )
    .await
    .unwrap();
    let download =
        |url: String| async move { client().get(url).send().await.unwrap().status().as_u16() };
    for provider in [Provider::ShortApi, Provider::AimlApi] {
        let (_, body) = valid_bodies()
            .into_iter()
            .find(|(p, _)| *p == provider)
            .unwrap();
        let id = create(&sandbox, provider, &body).await;
        let first = status(&sandbox, provider, &id).await.1.unwrap();
        assert_eq!(download(first.clone()).await, 403, "{provider}");
        let fresh = status(&sandbox, provider, &id).await.1.unwrap();
        assert_ne!(fresh, first);
        assert_eq!(download(fresh.clone()).await, 200, "{provider}");
        // And it stays valid.
        assert_eq!(status(&sandbox, provider, &id).await.1.unwrap(), fresh);
    }
    // Oxen's first URL arrives with the completion event; it answers 404.
    let mut events = client()
        .get(format!("{}/api/events", sandbox.url(Provider::Oxen)))
        .header("Authorization", KEY)
        .send()
        .await
        .unwrap();
    let id = create(&sandbox, Provider::Oxen, &valid_bodies()[7].1).await;
    let first = completion_event(&mut events, &id, &mut Vec::new()).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(download(first.clone()).await, 404);
    let fresh = status(&sandbox, Provider::Oxen, &id).await.1.unwrap();
    assert_ne!(fresh, first);
    assert_eq!(download(fresh).await, 200);
    sandbox.stop().await;
}

#[tokio::test]
async fn probabilities_are_seeded_and_repeatable() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let sandbox = manual(
            Config::default().seed(seed).fault(
                Fault::new(FaultKind::RateLimit)
                    .probability(0.5)
                    .on(Operation::Status),
            ),
        )
        .await;
        let url = format!("{}/api/ai/queue/none", sandbox.url(Provider::Oxen));
        let mut codes = Vec::new();
        for _ in 0..24 {
            codes.push(
                client()
                    .get(&url)
                    .header("Authorization", KEY)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        sandbox.stop().await;
        codes
    }
    let first = pattern(42).await;
    assert_eq!(first, pattern(42).await);
    assert!(first.contains(&429) && first.contains(&404), "{first:?}");
    assert_ne!(first, pattern(43).await);
}

#[tokio::test]
async fn stats_are_served_as_json() {
    let sandbox = manual(Config::default()).await;
    create(&sandbox, Provider::AimlApi, &valid_bodies()[3].1).await;
    let stats: Value = client()
        .get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["aimlapi"]["creates"], 1);
    assert_eq!(stats["shortapi"]["creates"], 0);
    for key in [
        "creates",
        "status_queries",
        "downloads",
        "rejected",
        "faults",
    ] {
        assert!(stats["oxen"][key].is_u64(), "{key}");
    }
    sandbox.stop().await;
}

/// A job's result URL on a sandbox with `fault` on downloads.
async fn result_url_with(fault: FaultKind) -> (Sandbox, String) {
    let sandbox = Sandbox::start(
        Config::default()
            .job_duration(Duration::ZERO)
            .fault(Fault::new(fault).on(Operation::Download)),
    )
    .await
    .unwrap();
    let (_, body) = valid_bodies()
        .into_iter()
        .find(|(p, _)| *p == Provider::ShortApi)
        .unwrap();
    let id = create(&sandbox, Provider::ShortApi, &body).await;
    let url = status(&sandbox, Provider::ShortApi, &id).await.1.unwrap();
    (sandbox, url)
}

#[tokio::test]
async fn an_html_fault_serves_an_error_page_as_the_result() {
    let (sandbox, url) = result_url_with(FaultKind::Html).await;
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.len() < 1024);
    sandbox.stop().await;
}

#[tokio::test]
async fn a_stall_fault_sends_a_few_bytes_of_the_announced_length_then_nothing() {
    let (sandbox, url) = result_url_with(FaultKind::Stall).await;
    let mut response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let announced = response.content_length().unwrap();
    assert!(announced > 1000, "{announced}");
    let mut got = 0;
    while got < 64 {
        got += response.chunk().await.unwrap().unwrap().len();
    }
    assert_eq!(got, 64);
    let next = tokio::time::timeout(Duration::from_secs(1), response.chunk()).await;
    assert!(next.is_err(), "nothing more comes: {next:?}");
    drop(response);
    sandbox.stop().await;
}
