//! The pipeline on each provider of the sandbox: charges recorded as the
//! provider reports them, a lost Oxen create found again, a failed upload
//! left safe to send, estimates from past charges.

use std::sync::Arc;
use std::time::Duration;

use kling::aimlapi::AimlApi;
use kling::oxen::Oxen;
use kling::shortapi::ShortApi;
use kling::upload::PostUploader;
use kling::{Client, EditRequest, Media, Provider, Request, SecretString, Usd};
use kling_ledger::{Error, Filter, Intent, Ledger, PriceSource, RunOptions, State};
use kling_sandbox::{Config, Fault, FaultKind, Operation, Sandbox};

type Build = fn(&str, SecretString) -> Arc<dyn Provider>;

const SHORTAPI: Build = |base, key| Arc::new(ShortApi::with_base_url(base, key).unwrap());
const AIMLAPI: Build = |base, key| Arc::new(AimlApi::with_base_url(base, key).unwrap());
const OXEN: Build = |base, key| Arc::new(Oxen::with_base_url(base, key).unwrap());

async fn start(
    config: Config,
    provider: kling_sandbox::Provider,
    build: Build,
) -> (Sandbox, Client) {
    let sandbox = Sandbox::start(config.job_duration(Duration::from_millis(200)))
        .await
        .unwrap();
    let client = Client::from_arc(build(&sandbox.url(provider), SecretString::from("k")));
    (sandbox, client)
}

fn edit(prompt: &str) -> Request {
    EditRequest::new(Media::url("https://media.example/in.mp4"), prompt).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_s_charge_is_recorded_as_reported() {
    use kling_sandbox::Provider as P;
    // The sandbox bills a URL edit as 5 s: ShortAPI's published $0.143/s
    // in pro, AI/ML API's 10,000 credits a second, Oxen's $0.10 a second
    // (the sandbox's own figure), read from its generation record.
    let cases: [(P, Build, Option<u64>, Option<u64>); 3] = [
        (P::ShortApi, SHORTAPI, Some(715_000), None),
        (P::AimlApi, AIMLAPI, None, Some(50_000 * 1_000_000)),
        (P::Oxen, OXEN, Some(500_000), None),
    ];
    for (provider, build, usd, credits) in cases {
        let (_sandbox, client) = start(Config::default(), provider, build).await;
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite3")).unwrap();
        let done = ledger
            .run(
                &client,
                Intent::new(
                    client.validate(&edit("snow")).unwrap(),
                    dir.path().join("o.mp4"),
                ),
                &RunOptions::default(),
            )
            .await
            .unwrap();
        let row = &done.record;
        assert_eq!(row.charged_usd.map(Usd::micros), usd, "{provider:?}");
        assert_eq!(row.charged_credits_micros, credits, "{provider:?}");
        assert_eq!(row.state, State::Downloaded);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_oxen_create_is_found_again_and_finished() {
    let config = Config::default().fault(
        Fault::new(FaultKind::Drop)
            .times(1)
            .provider(kling_sandbox::Provider::Oxen)
            .on(Operation::Create),
    );
    let (sandbox, client) = start(config, kling_sandbox::Provider::Oxen, OXEN).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("l.sqlite3")).unwrap();
    let done = ledger
        .run(
            &client,
            Intent::new(
                client.validate(&edit("fog")).unwrap(),
                dir.path().join("o.mp4"),
            ),
            &RunOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(done.record.state, State::Downloaded);
    assert!(
        done.record
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("found again")),
        "{:?}",
        done.record.detail
    );
    let stats = sandbox.stats();
    assert_eq!(stats["oxen"].creates, 1, "never created again");
    assert!(stats["oxen"].lookups >= 1);
    assert!(kling::probe::probe_file(&done.output).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_without_a_lookup_stays_may_exist_until_attached() {
    let config = Config::default().fault(
        Fault::new(FaultKind::Drop)
            .times(1)
            .provider(kling_sandbox::Provider::ShortApi)
            .on(Operation::Create),
    );
    let (sandbox, client) = start(config, kling_sandbox::Provider::ShortApi, SHORTAPI).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("l.sqlite3")).unwrap();
    let intent = Intent::new(
        client.validate(&edit("hail")).unwrap(),
        dir.path().join("o.mp4"),
    );
    let error = ledger
        .run(&client, intent.clone(), &RunOptions::default())
        .await
        .unwrap_err();
    assert!(error.may_exist(), "{error}");
    let row = &ledger.jobs(&Filter::all()).await.unwrap()[0];
    assert_eq!(row.state, State::MayExist);
    // Resuming never creates it again.
    let again = ledger
        .run(&client, intent.clone(), &RunOptions::default())
        .await;
    assert!(matches!(again, Err(Error::MayExist { .. })), "{again:?}");
    assert_eq!(sandbox.stats()["shortapi"].creates, 1);
    // The user finds the job in the dashboard (here: the sandbox's only
    // one) and attaches it: the next run follows and downloads it.
    let stats = sandbox.stats();
    assert_eq!(stats["shortapi"].creates, 1);
    let lost = sandbox.job_ids(kling_sandbox::Provider::ShortApi);
    let job = kling::JobHandle::new("shortapi", lost[0].clone());
    ledger.attach(row.intent, &job).await.unwrap();
    let done = ledger
        .run(&client, intent, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(done.record.job_id.as_deref(), Some(lost[0].as_str()));
    assert_eq!(sandbox.stats()["shortapi"].creates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_is_not_sent_and_is_sent_once_the_uploader_works() {
    let (sandbox, client) = start(
        Config::default(),
        kling_sandbox::Provider::ShortApi,
        SHORTAPI,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("in.mp4");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/street.mp4"),
        &video,
    )
    .unwrap();
    // Nothing listens on port 1 of the loopback.
    let broken = client
        .clone()
        .with_uploader(Arc::new(PostUploader::new("http://127.0.0.1:1/uploads")));
    let ledger = Ledger::open(dir.path().join("l.sqlite3")).unwrap();
    let request: Request = EditRequest::new(Media::file(&video), "rain on @Video1").into();
    let intent = Intent::new(broken.validate(&request).unwrap(), dir.path().join("o.mp4"));
    let error = ledger
        .run(&broken, intent.clone(), &RunOptions::default())
        .await
        .unwrap_err();
    assert!(!error.may_exist(), "{error}");
    let row = &ledger.jobs(&Filter::all()).await.unwrap()[0];
    assert_eq!((row.state, row.resend), (State::NotSent, true));
    assert_eq!(sandbox.stats()["shortapi"].creates, 0);

    let working = client.with_uploader(Arc::new(PostUploader::new(format!(
        "{}/uploads",
        sandbox.base_url()
    ))));
    let done = ledger
        .run(&working, intent, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(done.record.intent, row.intent, "the same row");
    assert_eq!(sandbox.stats()["shortapi"].creates, 1);
    assert_eq!(
        std::fs::read(&done.output).unwrap(),
        std::fs::read(&video).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_published_price_past_charges_make_the_estimate() {
    let (_sandbox, client) = start(Config::default(), kling_sandbox::Provider::Oxen, OXEN).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("l.sqlite3")).unwrap();
    let request: Request =
        kling::ReferRequest::new(Media::url("https://media.example/a.mp4"), "fly")
            .duration(5)
            .model(kling::Model::O3)
            .into();
    let before = ledger
        .estimate(&client, &client.validate(&request).unwrap())
        .await
        .unwrap();
    assert_eq!((before.usd, before.source), (None, PriceSource::Unknown));
    ledger
        .run(
            &client,
            Intent::new(client.validate(&request).unwrap(), dir.path().join("o.mp4")),
            &RunOptions::default(),
        )
        .await
        .unwrap();
    let longer: Request =
        kling::ReferRequest::new(Media::url("https://media.example/a.mp4"), "fly")
            .duration(10)
            .model(kling::Model::O3)
            .into();
    let after = ledger
        .estimate(&client, &client.validate(&longer).unwrap())
        .await
        .unwrap();
    assert_eq!(after.source, PriceSource::PastCharges { jobs: 1 });
    assert_eq!(
        after.usd,
        Some(Usd::from_micros(1_000_000)),
        "$0.10/s for 10 s"
    );
    assert!(after.to_string().contains("past charge"), "{after}");
}
