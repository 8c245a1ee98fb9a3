//! The client's charge and lost-create lookups, through the facade, against
//! the sandbox: every provider's charge where it reports one, and an Oxen
//! create whose answer was dropped, found again.

#![cfg(all(feature = "shortapi", feature = "aimlapi", feature = "oxen"))]

use std::time::{Duration, SystemTime};

use kling::aimlapi::AimlApi;
use kling::oxen::Oxen;
use kling::shortapi::ShortApi;
use kling::{
    Charge, Client, ComposeRequest, Credits, Found, JobState, LostCreate, Media, ReferRequest,
    Request, Usd, WaitOptions, WaitPolicy,
};
use kling_sandbox::{Config, Fault, FaultKind, Operation, Provider, Sandbox};

mod support;

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

/// Checks every 50-100 ms.
fn quick() -> WaitOptions {
    WaitOptions::default()
        .policy(WaitPolicy {
            first_check: Duration::from_millis(50),
            growth: 1.5,
            max_interval: Duration::from_millis(100),
            jitter: 0.0,
            while_pushing: Duration::from_millis(100),
        })
        .deadline(Duration::from_secs(20))
}

#[tokio::test]
async fn only_oxen_declares_the_lookup() {
    for provider in kling::PROVIDERS {
        assert_eq!(provider.capabilities.lookup, provider.name() == "oxen");
    }
    // The others answer that they cannot look.
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let request = Request::from(ReferRequest::new(url("in.mp4"), "Fly").duration(5));
    let clients = [
        Client::new(ShortApi::with_base_url(&sandbox.url(Provider::ShortApi), "k".into()).unwrap()),
        Client::new(AimlApi::with_base_url(&sandbox.url(Provider::AimlApi), "k".into()).unwrap()),
    ];
    for client in clients {
        let found = client
            .find_lost(&LostCreate::new(
                &support::checked(&client, &request),
                SystemTime::now(),
                &[],
            ))
            .await
            .unwrap();
        assert_eq!(found, Found::Unsupported);
        assert_eq!(
            client
                .charge(&kling::JobHandle::new(client.provider().name(), "x"))
                .await
                .unwrap(),
            None
        );
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn each_provider_reports_its_charge_where_it_does() {
    let sandbox = Sandbox::start(Config::default().job_duration(Duration::from_millis(200)))
        .await
        .unwrap();
    let request = Request::from(
        ComposeRequest::new("Walk through @Image1")
            .image(url("a.png"))
            .duration(10),
    );

    // ShortAPI: at create, in dollars, the published price.
    let shortapi =
        Client::new(ShortApi::with_base_url(&sandbox.url(Provider::ShortApi), "k".into()).unwrap());
    let job = support::submit(&shortapi, &request).await.unwrap();
    let estimate = support::estimate(&shortapi, &request).unwrap();
    assert_eq!(job.charge, estimate.usd.map(Charge::Usd));
    assert!(job.charge.is_some());

    // AI/ML API: with the status, in credits.
    let aimlapi =
        Client::new(AimlApi::with_base_url(&sandbox.url(Provider::AimlApi), "k".into()).unwrap());
    let job = support::submit(&aimlapi, &request).await.unwrap();
    assert_eq!(job.charge, None);
    let done = aimlapi.wait(&job, &quick()).await.unwrap();
    let used = done.raw["meta"]["usage"]["credits_used"].as_u64().unwrap();
    assert_eq!(
        done.charge,
        Some(Charge::Credits(Credits::from_millionths(used * 1_000_000)))
    );

    // Oxen: asked of the generation record once the job ended.
    let oxen = Client::new(
        Oxen::with_base_url(&sandbox.url(Provider::Oxen), "k".into())
            .unwrap()
            .without_events(),
    );
    let job = support::submit(&oxen, &request).await.unwrap();
    let done = oxen.wait(&job, &quick()).await.unwrap();
    assert!(matches!(done.state, JobState::Succeeded { .. }));
    assert_eq!(done.charge, None);
    assert_eq!(
        oxen.charge(&job).await.unwrap(),
        Some(Charge::Usd(Usd::from_micros(1_000_000))),
        "10 s at the sandbox's $0.10"
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn a_dropped_oxen_create_is_found_and_followed_to_its_end() {
    let sandbox = Sandbox::start(
        Config::default()
            .job_duration(Duration::from_millis(300))
            .fault(
                Fault::new(FaultKind::Drop)
                    .times(1)
                    .provider(Provider::Oxen)
                    .on(Operation::Create),
            ),
    )
    .await
    .unwrap();
    let client = Client::new(
        Oxen::with_base_url(&sandbox.url(Provider::Oxen), "k".into())
            .unwrap()
            .without_events(),
    );
    let request = Request::from(
        ReferRequest::new(url("in.mp4"), "Fly over @Video1")
            .model(kling::Model::O3)
            .duration(6),
    );
    let sent_at = SystemTime::now();
    let err = support::submit(&client, &request).await.unwrap_err();
    assert!(err.may_have_been_sent(), "{err}");

    let Found::Job(job) = client
        .find_lost(&LostCreate::new(
            &support::checked(&client, &request),
            sent_at,
            &[],
        ))
        .await
        .unwrap()
    else {
        panic!("the dropped create's job was not found");
    };
    let done = client.wait(&job, &quick()).await.unwrap();
    assert!(matches!(done.state, JobState::Succeeded { .. }));
    assert_eq!(
        client.charge(&job).await.unwrap(),
        Some(Charge::Usd(Usd::from_micros(600_000)))
    );
    let stats = sandbox.stats()["oxen"];
    assert_eq!(stats.creates, 1, "nothing was sent twice");
    sandbox.stop().await;
}
