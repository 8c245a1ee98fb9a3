//! Oxen's generation list and records, as the hub publishes them: filters,
//! pages newest first, each row carrying its enqueue's parameters and its
//! cost, the set's total cost, and Oxen's 404.

use std::time::Duration;

use kling_sandbox::{Config, Fault, FaultKind, Operation, Provider, Sandbox};
use reqwest::StatusCode;
use serde_json::{Value, json};

const KEY: &str = "Bearer sandbox-test-key";
const O3: &str = "kling-video-o3-omni";
const FRAMES: &str = "kling-video-o1-image-to-video";

fn client() -> reqwest::Client {
    kling_http::client_builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn manual(config: Config) -> Sandbox {
    Sandbox::start(config.manual_clock().job_duration(Duration::from_secs(8)))
        .await
        .unwrap()
}

async fn get(url: &str) -> (StatusCode, Value) {
    let response = client()
        .get(url)
        .header("Authorization", KEY)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Enqueues `body` and returns the generation's id.
async fn enqueue(sandbox: &Sandbox, body: &Value) -> String {
    let answer: Value = client()
        .post(format!("{}/api/ai/queue", sandbox.url(Provider::Oxen)))
        .header("Authorization", KEY)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["generations"][0]["generation_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn reference(prompt: &str, duration: u32) -> Value {
    json!({
        "model": O3, "prompt": prompt, "video_mode": "reference",
        "input_video": "https://media.example/in.mp4", "input_image": ["https://media.example/a.png"],
        "aspect_ratio": "9:16", "duration": duration,
    })
}

fn frames(prompt: &str) -> Value {
    json!({"model": FRAMES, "prompt": prompt, "input_image": "https://media.example/a.png", "duration": 10})
}

async fn list(sandbox: &Sandbox, query: &str) -> Value {
    let (status, page) = get(&format!(
        "{}/api/ai/generations?{query}",
        sandbox.url(Provider::Oxen)
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page
}

fn ids(page: &Value) -> Vec<String> {
    page["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["generation_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn rows_carry_their_parameters_status_and_cost() {
    let sandbox = manual(Config::default()).await;
    let body = reference("Fly over @Video1", 7);
    let id = enqueue(&sandbox, &body).await;
    let url = format!("{}/api/ai/generations/{id}", sandbox.url(Provider::Oxen));

    let (status, record) = get(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["status"], "success");
    assert_eq!(record["status_message"], "resource_found");
    let row = &record["generation"];
    // The enqueue's parameters, merged in at the top level; the model as
    // `model_name`.
    for (name, value) in body.as_object().unwrap() {
        if name != "model" {
            assert_eq!(&row[name], value, "{name}");
        }
    }
    assert!(row.get("model").is_none());
    assert_eq!(row["generation_id"], id.as_str());
    assert_eq!(row["model_name"], O3);
    assert_eq!(row["media_type"], "video");
    assert_eq!(row["status"], "queued");
    assert!(row["enqueued_at"].is_u64());
    assert_eq!(row["cost"], Value::Null, "not charged before it ends");
    assert_eq!(row["result_url"], Value::Null);

    sandbox.advance(Duration::from_secs(8));
    let (_, record) = get(&url).await;
    let row = &record["generation"];
    assert_eq!(row["status"], "succeeded");
    assert!(
        row["result_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1")
    );
    // $0.10 a second, the sandbox's own rate: 7 s.
    assert_eq!(row["cost"], "0.70");
    assert!(row["completed_at"].as_u64() >= row["enqueued_at"].as_u64());

    // The queue's entry and the record agree.
    let (_, entry) = get(&format!(
        "{}/api/ai/queue/{id}",
        sandbox.url(Provider::Oxen)
    ))
    .await;
    for name in [
        "generation_id",
        "model_name",
        "status",
        "enqueued_at",
        "result_url",
    ] {
        assert_eq!(entry[name], row[name], "{name}");
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn an_unknown_generation_is_oxens_404() {
    let sandbox = manual(Config::default()).await;
    // Other providers' jobs are not Oxen generations.
    let aimlapi: Value = client()
        .post(format!("{}/v2/video/generations", sandbox.url(Provider::AimlApi)))
        .header("Authorization", KEY)
        .json(&json!({"model": "klingai/video-o1-image-to-video", "prompt": "go", "image_url": "https://media.example/a.png"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aimlapi_id = aimlapi["id"].as_str().unwrap().to_owned();
    for id in ["00000000-0000-4000-a000-000000000000", &aimlapi_id] {
        let (status, body) = get(&format!(
            "{}/api/ai/generations/{}",
            sandbox.url(Provider::Oxen),
            id.replace('/', "%2F")
        ))
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["error"]["type"], "not_found");
    }
    assert!(ids(&list(&sandbox, "").await).is_empty());
    sandbox.stop().await;
}

#[tokio::test]
async fn filters_select_by_model_status_and_media_type() {
    let sandbox = manual(Config::default()).await;
    let done = enqueue(&sandbox, &reference("first", 5)).await;
    let done_frames = enqueue(&sandbox, &frames("bloom")).await;
    sandbox.advance(Duration::from_secs(8));
    let queued = enqueue(&sandbox, &reference("second", 10)).await;
    let cancelled = enqueue(&sandbox, &reference("third", 3)).await;
    let cancel = client()
        .delete(format!(
            "{}/api/ai/queue/{cancelled}",
            sandbox.url(Provider::Oxen)
        ))
        .header("Authorization", KEY)
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success());

    // Newest first; ties in time (a frozen clock) keep creation order.
    let all = list(&sandbox, "").await;
    assert_eq!(
        ids(&all),
        [
            cancelled.clone(),
            queued.clone(),
            done_frames.clone(),
            done.clone()
        ]
    );
    assert_eq!(all["total_entries"], 4);
    // Charged: the two that succeeded, 5 s and 10 s at $0.10.
    assert_eq!(all["total_cost"], "1.50");

    let o3 = list(&sandbox, &format!("model={O3}")).await;
    assert_eq!(ids(&o3), [cancelled.clone(), queued.clone(), done.clone()]);
    assert_eq!(o3["total_cost"], "0.50");
    assert!(
        o3["generations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["model_name"] == O3)
    );

    for (status, expected) in [
        ("succeeded", vec![done_frames.clone(), done.clone()]),
        ("queued", vec![queued.clone()]),
        ("cancelled", vec![cancelled.clone()]),
        ("failed", vec![]),
        ("processing", vec![]),
    ] {
        let page = list(&sandbox, &format!("status={status}")).await;
        assert_eq!(ids(&page), expected, "{status}");
    }
    // Nothing charged in the set: `total_cost` is null.
    let queued_only = list(&sandbox, &format!("model={O3}&status=queued")).await;
    assert_eq!(ids(&queued_only), [queued]);
    assert_eq!(queued_only["total_cost"], Value::Null);

    assert_eq!(ids(&list(&sandbox, "media_type=video").await).len(), 4);
    assert!(ids(&list(&sandbox, "media_type=image").await).is_empty());
    assert!(ids(&list(&sandbox, "model=no-such-model").await).is_empty());
    // Filters the sandbox does not model are accepted.
    assert_eq!(ids(&list(&sandbox, "namespace=me&repo=r").await).len(), 4);
    sandbox.stop().await;
}

#[tokio::test]
async fn pages_cover_the_set_once() {
    let sandbox = manual(Config::default()).await;
    let mut created = Vec::new();
    for n in 0..7 {
        created.push(enqueue(&sandbox, &frames(&format!("take {n}"))).await);
    }
    created.reverse(); // newest first
    let mut seen = Vec::new();
    for page in 1..=3 {
        let body = list(&sandbox, &format!("page={page}&page_size=3")).await;
        assert_eq!(body["page_number"], page);
        assert_eq!(body["page_size"], 3);
        assert_eq!(body["total_pages"], 3);
        assert_eq!(body["total_entries"], 7);
        let rows = ids(&body);
        assert_eq!(body["count"], rows.len());
        seen.extend(rows);
    }
    assert_eq!(seen, created);
    // Past the end: an empty page.
    let past = list(&sandbox, "page=4&page_size=3").await;
    assert!(ids(&past).is_empty());
    assert_eq!(past["count"], 0);
    // The default page holds 50.
    let default = list(&sandbox, "").await;
    assert_eq!(default["page_size"], 50);
    assert_eq!(default["page_number"], 1);
    assert_eq!(ids(&default), created);
    // An empty set still has one page, as the hub's paginator counts.
    let none = list(&sandbox, "model=none").await;
    assert_eq!(
        (none["total_pages"].clone(), none["total_entries"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(list(&sandbox, "page_size=1000").await["count"], 7);

    for query in [
        "page_size=0",
        "page_size=1001",
        "page_size=ten",
        "page=0",
        "page=-1",
        "status=done",
        "media_type=audio",
    ] {
        let (status, body) = get(&format!(
            "{}/api/ai/generations?{query}",
            sandbox.url(Provider::Oxen)
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["type"], "bad_request", "{query}");
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn lookups_are_counted_guarded_and_faulted() {
    let sandbox = manual(
        Config::default().fault(
            Fault::new(FaultKind::RateLimit)
                .times(1)
                .provider(Provider::Oxen)
                .on(Operation::Lookup),
        ),
    )
    .await;
    let id = enqueue(&sandbox, &frames("bloom")).await;
    let list_url = format!("{}/api/ai/generations", sandbox.url(Provider::Oxen));
    let (status, _) = get(&list_url).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = get(&list_url).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&format!("{list_url}/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    // Without a key: Oxen's 401.
    let keyless = client().get(&list_url).send().await.unwrap().status();
    assert_eq!(keyless, StatusCode::UNAUTHORIZED);

    let oxen = sandbox.stats()["oxen"];
    assert_eq!(oxen.lookups, 2);
    assert_eq!(oxen.faults, 1);
    // Lookups are neither status queries nor creates.
    assert_eq!((oxen.status_queries, oxen.creates), (0, 1));
    let served: Value = client()
        .get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["oxen"]["lookups"], 2);
    assert!("429@oxen/lookup".parse::<Fault>().is_ok());
    sandbox.stop().await;
}
