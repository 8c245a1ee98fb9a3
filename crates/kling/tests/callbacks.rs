//! Calls back about jobs: a ShortAPI job on the sandbox ends its wait when
//! called back, after one status query; a call is never believed alone,
//! and unknown tokens, duplicates and replays change nothing.

#![cfg(all(feature = "shortapi", feature = "callbacks"))]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kling::callback::{CallbackReceiver, Received};
use kling::provider::{Capabilities, Offering, PreparedCall, Provider};
use kling::shortapi::ShortApi;
use kling::{
    Checked, Client, EditRequest, Error, JobHandle, JobState, JobStatus, Media, Model, Request,
    Task, WaitOptions,
};
use kling_sandbox::{Config, Provider as Emulated, Sandbox};

/// A receiver served on a loopback port of its own.
async fn serve_receiver() -> CallbackReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let receiver = CallbackReceiver::new(&format!("http://{address}/hooks")).unwrap();
    tokio::spawn(receiver.clone().serve(listener));
    receiver
}

fn edit() -> Request {
    Request::from(EditRequest::new(
        Media::url("https://media.example/in.mp4"),
        "Make it snow on @Video1",
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_ends_a_one_second_job_with_one_status_query() {
    let sandbox = Sandbox::start(Config::default().job_duration(Duration::from_secs(1)))
        .await
        .unwrap();
    let receiver = serve_receiver().await;
    let shortapi =
        ShortApi::with_base_url(&sandbox.url(Emulated::ShortApi), "sandbox-key".into()).unwrap();
    let client = Client::new(shortapi).with_callbacks(receiver.clone());
    let checked = client.validate(&edit()).unwrap();

    let call = client.prepare(&checked).unwrap();
    let shown = call.body["callback_url"].as_str().unwrap();
    assert!(shown.ends_with("/hooks/shortapi?token=TOKEN"), "{shown}");

    let started = Instant::now();
    let job = client.submit(&checked).await.unwrap();
    let mut arrived = None;
    let done = client
        .wait_with(&job, &WaitOptions::default(), |_| {
            arrived = arrived.or(client.callback_arrived(&job));
        })
        .await
        .unwrap();
    let took = started.elapsed();

    assert!(matches!(done.state, JobState::Succeeded { .. }));
    // The sandbox counts its call once our answer reaches it, which may be
    // after the wait it woke has ended.
    for _ in 0..200 {
        if sandbox.stats().of(Emulated::ShortApi).callbacks > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = sandbox.stats().of(Emulated::ShortApi);
    println!(
        "a 1 s job with callbacks: {took:?}, {} status queries",
        stats.status_queries
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(stats.callbacks, 1);
    assert!(
        stats.status_queries <= 1,
        "{} status queries",
        stats.status_queries
    );
    assert!(
        arrived.is_some(),
        "the arrival is known while the wait reports"
    );
    // The wait ended: its ticket is gone.
    assert_eq!(client.callback_arrived(&job), None);
}

/// A provider that calls back: it keeps the URL each create gave, and its
/// job runs until told to end.
#[derive(Debug, Default)]
struct Hooked {
    url: Mutex<Option<String>>,
    done: AtomicBool,
    statuses: AtomicU32,
    /// Every create's answer is lost after it was sent.
    lost: bool,
}

const HOOKED: Capabilities =
    Capabilities::new("hooked", &[Offering::new(Task::Edit, Model::O1, "edit")]).with_callbacks();

#[async_trait]
impl Provider for Hooked {
    fn capabilities(&self) -> &Capabilities {
        &HOOKED
    }

    fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error> {
        let offering = HOOKED.accept(checked)?;
        let body = serde_json::json!({ "callback": checked.callback_url() });
        Ok(PreparedCall::new(
            "POST",
            "https://hooked.example".into(),
            body,
            offering.wire_model,
        ))
    }

    async fn submit(&self, checked: &Checked) -> Result<JobHandle, Error> {
        *self.url.lock().unwrap() = checked.callback_url().map(str::to_owned);
        if self.lost {
            return Err(Error::Timeout {
                job: None,
                after: Duration::from_secs(60),
                delivery: kling::Delivery::MaybeSent,
            });
        }
        Ok(JobHandle::new("hooked", "7"))
    }

    async fn status(&self, _job: &JobHandle) -> Result<JobStatus, Error> {
        self.statuses.fetch_add(1, Ordering::SeqCst);
        let state = if self.done.load(Ordering::SeqCst) {
            JobState::Succeeded {
                outputs: vec!["https://cdn.example/out.mp4".into()],
            }
        } else {
            JobState::Running
        };
        Ok(JobStatus::new(state, serde_json::Value::Null))
    }
}

impl Hooked {
    /// The callback URL its last create got, and the token in it.
    fn callback(&self) -> (String, String) {
        let url = self
            .url
            .lock()
            .unwrap()
            .clone()
            .expect("a create with a callback URL");
        let token = url.split_once("?token=").expect("a token").1.to_owned();
        (url, token)
    }
}

async fn post(url: &str) -> u16 {
    kling_http::client_builder()
        .build()
        .unwrap()
        .post(url)
        .body(r#"{"code":0,"data":{"status":2,"result":{"videos":[{"url":"https://evil.example/x.mp4"}]}}}"#)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until `provider` has answered `n` status queries, for at most 3 s.
async fn statuses_reach(provider: &Hooked, n: u32) {
    for _ in 0..300 {
        if provider.statuses.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} status queries, not {n}",
        provider.statuses.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_confirmed_and_strangers_duplicates_and_replays_change_nothing() {
    let receiver = serve_receiver().await;
    let provider = Arc::new(Hooked::default());
    let client = Client::from_arc(provider.clone()).with_callbacks(receiver.clone());
    let job = client
        .submit(&client.validate(&edit()).unwrap())
        .await
        .unwrap();
    let (url, token) = provider.callback();
    let base = url.split_once("?token=").unwrap().0;
    assert_eq!(base, format!("{}/hooked", receiver.public_url()));
    assert_eq!(token.len(), 64, "256 bits, in hex");

    let waiting = {
        let client = client.clone();
        let job = job.clone();
        tokio::spawn(async move { client.wait(&job, &WaitOptions::default()).await })
    };

    // Strangers: another token, none, the right token for another provider.
    let stranger = format!("{base}?token={}", "0".repeat(64));
    assert_eq!(post(&stranger).await, 404);
    assert_eq!(post(base).await, 404);
    let elsewhere = url.replace("/hooked?", "/shortapi?");
    assert_eq!(post(&elsewhere).await, 404);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        provider.statuses.load(Ordering::SeqCst),
        0,
        "no call was taken"
    );

    // A call while the job still runs: its body claims success, but the
    // status query it causes says running, and the wait goes on.
    assert_eq!(post(&url).await, 200);
    statuses_reach(&provider, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "a call alone never ends a wait");

    // The job ends and the provider calls: one more query ends the wait.
    provider.done.store(true, Ordering::SeqCst);
    assert_eq!(post(&url).await, 200);
    let done = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("the call ended the wait")
        .unwrap()
        .unwrap();
    assert!(matches!(done.state, JobState::Succeeded { .. }));
    assert_eq!(provider.statuses.load(Ordering::SeqCst), 2);

    // Replays after the end are answered, and cause nothing.
    assert_eq!(receiver.receive("hooked", &token), Received::Duplicate);
    assert_eq!(post(&url).await, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(provider.statuses.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_create_that_was_not_sent_leaves_no_ticket() {
    let receiver = CallbackReceiver::new("http://127.0.0.1:9/hooks").unwrap();
    let shortapi = ShortApi::with_base_url("http://127.0.0.1:9/shortapi", "k".into()).unwrap();
    let client = Client::new(shortapi).with_callbacks(receiver.clone());
    let checked = client.validate(&edit()).unwrap();
    let err = client.submit(&checked).await.unwrap_err();
    assert!(!err.may_have_been_sent(), "{err}");
    assert!(format!("{receiver:?}").contains("open: 0"), "{receiver:?}");
}

#[tokio::test]
async fn a_create_that_may_exist_keeps_its_ticket_for_the_call_that_proves_it() {
    let receiver = CallbackReceiver::new("http://127.0.0.1:9/hooks").unwrap();
    let provider = Arc::new(Hooked {
        lost: true,
        ..Hooked::default()
    });
    let client = Client::from_arc(provider.clone()).with_callbacks(receiver.clone());
    let err = client
        .submit(&client.validate(&edit()).unwrap())
        .await
        .unwrap_err();
    assert!(err.may_have_been_sent(), "{err}");
    let (_, token) = provider.callback();
    // The job exists after all: its call is taken (and logged), not a 404.
    assert_eq!(receiver.receive("hooked", &token), Received::Accepted);
}

#[tokio::test]
async fn a_wait_that_ends_without_an_end_state_forgets_its_ticket() {
    let receiver = CallbackReceiver::new("http://127.0.0.1:9/hooks").unwrap();
    let provider = Arc::new(Hooked::default());
    let client = Client::from_arc(provider.clone()).with_callbacks(receiver.clone());
    let job = client
        .submit(&client.validate(&edit()).unwrap())
        .await
        .unwrap();
    assert!(format!("{receiver:?}").contains("open: 1"), "{receiver:?}");
    let short = WaitOptions::default().deadline(Duration::from_millis(50));
    let err = client.wait(&job, &short).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(format!("{receiver:?}").contains("open: 0"), "{receiver:?}");
    let (_, token) = provider.callback();
    assert_eq!(receiver.receive("hooked", &token), Received::Duplicate);
}

/// Takes calls whose `x-test-signature` is `len:` and the body's length: a
/// stand-in for a provider's real signature (fal signs its webhooks).
struct LengthSigned;

#[async_trait::async_trait]
impl kling::callback::CallbackVerifier for LengthSigned {
    async fn verify(
        &self,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let signed = headers
            .get("x-test-signature")
            .and_then(|value| value.to_str().ok());
        if signed == Some(format!("len:{}", body.len()).as_str()) {
            Ok(())
        } else {
            Err(format!("signature {signed:?}"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_providers_calls_are_taken_only_with_a_valid_signature() {
    let receiver = serve_receiver()
        .await
        .with_verifier("hooked", Arc::new(LengthSigned));
    let provider = Arc::new(Hooked::default());
    let client = Client::from_arc(provider.clone()).with_callbacks(receiver.clone());
    let job = client
        .submit(&client.validate(&edit()).unwrap())
        .await
        .unwrap();
    let (url, _) = provider.callback();
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.wait(&job, &WaitOptions::default()).await })
    };
    provider.done.store(true, Ordering::SeqCst);
    let http = kling_http::client_builder().build().unwrap();
    let call = |signature: Option<&str>| {
        let mut request = http.post(&url).body("{\"status\":\"OK\"}");
        if let Some(signature) = signature {
            request = request.header("x-test-signature", signature);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Unsigned, or signed wrong: refused, and no status is asked.
    assert_eq!(call(None).await, 401);
    assert_eq!(call(Some("len:3")).await, 401);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(provider.statuses.load(Ordering::SeqCst), 0);
    assert!(!waiting.is_finished());
    // Signed right: taken, and the wait ends.
    assert_eq!(call(Some("len:15")).await, 200);
    let done = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("the signed call ended the wait")
        .unwrap()
        .unwrap();
    assert!(matches!(done.state, JobState::Succeeded { .. }));
    assert_eq!(provider.statuses.load(Ordering::SeqCst), 1);
}
