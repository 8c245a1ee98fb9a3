//! What ShortAPI says it charged comes back on the job handle: the create
//! answer's `data.amount`, exact to the micro-dollar, against the sandbox.

use kling_core::{
    AnimateRequest, Charge, EditRequest, Media, Mode, Model, ReferRequest, Request, Usd,
};
use kling_sandbox::{Config, Provider, Sandbox};
use kling_shortapi::{DESCRIPTOR, ShortApi};

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

#[tokio::test]
async fn the_handle_carries_the_amount_charged_at_create() {
    let sandbox = Sandbox::start(Config::default().manual_clock())
        .await
        .unwrap();
    let shortapi = ShortApi::with_base_url(&sandbox.url(Provider::ShortApi), "k".into()).unwrap();

    // O1 edit in pro mode, billed 5 s (a URL input's length is not known
    // to the sandbox, which bills the default) at $0.143/s.
    let edit = Request::from(EditRequest::new(url("in.mp4"), "Make @Video1 snowy"));
    let job = kling_sandbox::submit(&shortapi, &edit).await.unwrap();
    assert_eq!(job.charge, Some(Charge::Usd(Usd::from_micros(715_000))));

    // Every charge is the catalogue's price for the seconds billed.
    let cases: Vec<(Request, u32)> = vec![
        (
            ReferRequest::new(url("in.mp4"), "Fly over")
                .model(Model::O3)
                .mode(Mode::Std)
                .duration(7)
                .into(),
            7,
        ),
        (
            ReferRequest::new(url("in.mp4"), "Fly over")
                .mode(Mode::Std)
                .duration(10)
                .into(),
            10,
        ),
        (
            AnimateRequest::new(url("a.png"), "Bloom")
                .mode(Mode::Std)
                .duration(10)
                .into(),
            10,
        ),
        // Published per request in pro mode: the length does not matter.
        (
            AnimateRequest::new(url("a.png"), "Bloom")
                .duration(10)
                .into(),
            10,
        ),
    ];
    for (request, seconds) in cases {
        let offering = DESCRIPTOR.capabilities.check(&request).unwrap();
        let price = offering.price(request.mode()).for_seconds(seconds).unwrap();
        let job = kling_sandbox::submit(&shortapi, &request).await.unwrap();
        assert_eq!(job.charge, Some(Charge::Usd(price)), "{request:?}");
        // The charge survives the handle's serialized form.
        let stored: kling_core::JobHandle =
            serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(stored.charge, job.charge);
    }
    sandbox.stop().await;
}
