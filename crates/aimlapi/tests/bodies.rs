//! The exact body for every task AI/ML API offers, as snapshots, each
//! checked against `schemas/published/aimlapi`, and what it refuses.

use kling_aimlapi::AimlApi;
use kling_aimlapi::wire::Route;
use kling_core::{
    AnimateRequest, AspectRatio, ComposeRequest, EditRequest, Element, Media, Mode, Model,
    ReferRequest, Request,
};
use kling_sandbox::{Provider as Emulated, published_schema_errors};

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

fn dog() -> Element {
    Element::new(url("dog-front.png")).reference(url("dog-side.png"))
}

fn fixture(name: &str) -> String {
    format!(
        "{}/../core/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn aimlapi() -> AimlApi {
    AimlApi::with_base_url("https://api.aimlapi.com", "sk-test".into()).unwrap()
}

fn cases() -> Vec<(&'static str, Request)> {
    vec![
        (
            "edit",
            EditRequest::new(
                url("street.mp4"),
                "Replace the statue in [@Video1] with @Element1 under the sky of <<<image_1>>>",
            )
            .image(url("sky.jpg"))
            .element(dog())
            .keep_audio(true)
            .into(),
        ),
        (
            "edit-plain",
            EditRequest::new(url("street.mp4"), "Make it snow").into(),
        ),
        (
            "refer",
            ReferRequest::new(
                url("drone.mp4"),
                "Follow the camera of @Video1 over @Image1",
            )
            .image(url("forest.jpg"))
            .duration(10)
            .aspect_ratio(AspectRatio::Portrait)
            .into(),
        ),
        (
            "animate-first",
            AnimateRequest::new(url("bud.png"), "@Image1 opens in the sun").into(),
        ),
        (
            "animate-first-last",
            AnimateRequest::new(url("bud.png"), "From @Image1 to @Image2")
                .last(url("bloom.png"))
                .duration(10)
                .into(),
        ),
        (
            "compose",
            ComposeRequest::new("@Element1 walks through @Image1")
                .image(url("market.jpg"))
                .element(dog())
                .aspect_ratio(AspectRatio::Square)
                .into(),
        ),
    ]
}

#[test]
fn every_body_matches_its_snapshot_and_the_published_schema() {
    for (name, request) in cases() {
        let call = kling_sandbox::prepare(&aimlapi(), &request).unwrap();
        let errors = published_schema_errors(Emulated::AimlApi, &call.model, &call.body);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        insta::assert_json_snapshot!(name, call.body);
    }
}

#[test]
fn the_route_is_sent_when_chosen() {
    let request = Request::from(EditRequest::new(url("a.mp4"), "go"));
    let call = kling_sandbox::prepare(&aimlapi().route(Route::Fal), &request).unwrap();
    assert_eq!(call.body["provider"], "fal");
    assert!(published_schema_errors(Emulated::AimlApi, &call.model, &call.body).is_empty());
    let call = kling_sandbox::prepare(&aimlapi(), &request).unwrap();
    assert!(call.body.get("provider").is_none());
}

#[test]
fn a_dry_run_describes_local_files_without_reading_them() {
    let clip = fixture("faststart.mp4");
    let request = Request::from(EditRequest::new(Media::file(&clip), "Make @Video1 snowy"));
    let call = kling_sandbox::prepare(&aimlapi(), &request).unwrap();
    let size = std::fs::metadata(&clip).unwrap().len();
    assert_eq!(
        call.body["video_url"],
        format!("data:video/mp4;base64,… ({clip}, {size} bytes, inline)")
    );
}

#[test]
fn what_aimlapi_lacks_is_refused_before_sending() {
    for (request, expected) in [
        (
            Request::from(EditRequest::new(url("in.mp4"), "go").mode(Mode::Std)),
            "aimlapi does not offer std mode (mode): it runs pro only for edit on o1; nothing was sent",
        ),
        (
            Request::from(EditRequest::new(url("in.mp4"), "go").model(Model::O3)),
            "aimlapi does not offer model o3 (it offers o1) for edit; nothing was sent",
        ),
        (
            Request::from(ReferRequest::new(url("in.mp4"), "go").duration(7)),
            "invalid request, nothing was sent: duration: 7 s, allowed 5 or 10 s on aimlapi for refer",
        ),
    ] {
        let err = kling_sandbox::prepare(&aimlapi(), &request).unwrap_err();
        assert!(!err.may_have_been_sent());
        assert_eq!(err.to_string(), expected);
    }
}
