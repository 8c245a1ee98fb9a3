//! The exact body for every task Oxen offers, as snapshots, each checked
//! against `schemas/published/oxen` (the queue envelope and the model),
//! and what it refuses before enqueueing.

use kling_core::{
    AnimateRequest, AspectRatio, ComposeRequest, EditRequest, Element, Media, Mode, Model,
    ReferRequest, Request,
};
use kling_oxen::{DESCRIPTOR, Oxen};
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

fn oxen() -> Oxen {
    Oxen::with_base_url("https://hub.oxen.ai", "ox-test".into())
        .unwrap()
        .without_events()
}

fn cases() -> Vec<(&'static str, Request)> {
    let edit = |model| {
        EditRequest::new(
            url("street.mp4"),
            "Replace the statue in [@Video1] with @Element1 under the sky of <<<image_1>>>",
        )
        .image(url("sky.jpg"))
        .element(dog())
        .model(model)
    };
    vec![
        ("edit-o1", edit(Model::O1).keep_audio(true).into()),
        (
            "edit-o1-plain",
            EditRequest::new(url("street.mp4"), "Make it snow").into(),
        ),
        ("edit-o3", edit(Model::O3).into()),
        (
            "refer-o3",
            ReferRequest::new(
                url("drone.mp4"),
                "Follow the camera of @Video1 over @Image1",
            )
            .image(url("forest.jpg"))
            .duration(7)
            .aspect_ratio(AspectRatio::Portrait)
            .model(Model::O3)
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
        let call = kling_sandbox::prepare(&oxen(), &request).unwrap();
        let errors = published_schema_errors(Emulated::Oxen, &call.model, &call.body);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        insta::assert_json_snapshot!(name, call.body);
    }
}

#[test]
fn every_rule_applies_before_enqueueing() {
    // Oxen would accept these and fail minutes later; here nothing is sent.
    for (request, expected) in [
        (
            Request::from(EditRequest::new(url("in.mp4"), "@Image1 on @Video1")),
            "prompt_reference",
        ),
        (
            Request::from(AnimateRequest::new(url("a.png"), "go").duration(7)),
            "duration_choice",
        ),
        (
            Request::from(EditRequest::new(url("in.mp4"), " ")),
            "prompt_empty",
        ),
    ] {
        let err = kling_sandbox::prepare(&oxen(), &request).unwrap_err();
        assert_eq!(err.violations()[0].rule(), expected, "{err}");
    }
    for (request, expected) in [
        (
            Request::from(EditRequest::new(url("in.mp4"), "go").mode(Mode::Std)),
            "oxen does not offer std mode (mode): it runs pro only for edit on o1; nothing was sent",
        ),
        (
            Request::from(ReferRequest::new(url("in.mp4"), "go")),
            "oxen does not offer model o1 (it offers o3) for refer; nothing was sent",
        ),
        (
            Request::from(
                EditRequest::new(url("in.mp4"), "go")
                    .model(Model::O3)
                    .keep_audio(true),
            ),
            "oxen does not offer keeping the audio (keep_audio) for edit on o3; nothing was sent",
        ),
    ] {
        let err = kling_sandbox::prepare(&oxen(), &request).unwrap_err();
        assert!(!err.may_have_been_sent());
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn gif_images_pass_here_and_local_files_need_an_uploader() {
    let gif = Request::from(
        ComposeRequest::new("@Image1 spins").image(Media::file(fixture("image.gif"))),
    );
    assert!(DESCRIPTOR.capabilities.validate(&gif).is_ok());
    let err = gif.validate().unwrap_err();
    assert_eq!(err.violations()[0].rule(), "image_format", "{err}");

    let err = kling_sandbox::prepare(&oxen(), &gif).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("oxen does not offer local files (images[0]: "),
        "{text}"
    );
    assert!(text.contains("plug an Uploader"), "{text}");
}
