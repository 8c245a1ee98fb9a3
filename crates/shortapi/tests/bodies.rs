//! The exact body for every task, model and mode ShortAPI offers, as
//! snapshots, each checked against `schemas/published/shortapi`.

use kling_core::{
    AnimateRequest, AspectRatio, ComposeRequest, EditRequest, Element, Media, Mode, Model,
    ReferRequest, Request,
};
use kling_shortapi::ShortApi;
use serde_json::Value;

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

fn dog() -> Element {
    Element::new(url("dog-front.png")).reference(url("dog-side.png"))
}

fn published(model: &str) -> jsonschema::Validator {
    let file = match model {
        "kwaivgi/kling-o1/video-to-video" => "kling-o1-video-to-video.json",
        "kwaivgi/kling-o3/video-to-video" => "kling-o3-video-to-video.json",
        _ => "kling-o1-image-to-video.json",
    };
    let path = format!(
        "{}/../../schemas/published/shortapi/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn cases() -> Vec<(String, Request)> {
    let mut cases = Vec::new();
    for mode in [Mode::Std, Mode::Pro] {
        for model in [Model::O1, Model::O3] {
            let edit = EditRequest::new(
                url("street.mp4"),
                "Replace the statue in @Video1 with @Element1 under the sky of @Image1",
            )
            .image(url("sky.jpg"))
            .element(dog())
            .model(model)
            .mode(mode);
            let edit = if model == Model::O1 {
                edit.keep_audio(true)
            } else {
                edit
            };
            cases.push((format!("edit-{model}-{mode}"), edit.into()));
            let refer = ReferRequest::new(
                url("drone.mp4"),
                "Follow the camera of [@Video1] over <<<image_1>>>",
            )
            .image(url("forest.jpg"))
            .duration(7)
            .aspect_ratio(AspectRatio::Portrait)
            .model(model)
            .mode(mode);
            cases.push((format!("refer-{model}-{mode}"), refer.into()));
        }
        let first = AnimateRequest::new(url("bud.png"), "@Image1 opens in the sun")
            .duration(10)
            .mode(mode);
        cases.push((format!("animate-first-o1-{mode}"), first.into()));
        let both = AnimateRequest::new(url("bud.png"), "From @Image1 to @Image2")
            .last(url("bloom.png"))
            .duration(4)
            .mode(mode);
        cases.push((format!("animate-first-last-o1-{mode}"), both.into()));
        let compose = ComposeRequest::new("@Element1 walks through @Image1")
            .image(url("market.jpg"))
            .element(dog())
            .aspect_ratio(AspectRatio::Square)
            .mode(mode);
        cases.push((format!("compose-o1-{mode}"), compose.into()));
    }
    cases
}

#[test]
fn every_body_matches_its_snapshot_and_the_published_schema() {
    let shortapi = ShortApi::with_base_url("https://api.shortapi.ai", "sk-test".into()).unwrap();
    let cases = cases();
    assert_eq!(cases.len(), 14);
    for (name, request) in cases {
        let call = kling_sandbox::prepare(&shortapi, &request).unwrap();
        let errors: Vec<String> = published(&call.model)
            .iter_errors(&call.body)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        insta::assert_json_snapshot!(name, call.body);
    }
}

#[test]
fn what_shortapi_lacks_is_refused_before_sending() {
    let shortapi = ShortApi::with_base_url("https://api.shortapi.ai", "sk-test".into()).unwrap();
    let clip = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/fixtures/faststart.mp4"
    );
    for (request, expected) in [
        (
            Request::from(EditRequest::new(url("in.mp4"), "go").model(Model::O3).keep_audio(true)),
            &"shortapi does not offer keeping the audio (keep_audio) for edit on o3; nothing was sent".to_owned(),
        ),
        (
            Request::from(AnimateRequest::new(url("a.png"), "go").model(Model::O3)),
            &"shortapi does not offer model o3 (it offers o1) for animate; nothing was sent".to_owned(),
        ),
        (
            Request::from(EditRequest::new(Media::file(clip), "go")),
            &format!("shortapi does not offer local files (video: {clip}): it fetches inputs by URL. Give a URL, plug an Uploader that turns files into URLs (Client::with_uploader; the sandbox has one), or use a provider that takes local files inline; nothing was sent"),
        ),
    ] {
        let err = kling_sandbox::prepare(&shortapi, &request).unwrap_err();
        assert!(!err.may_have_been_sent());
        assert_eq!(&err.to_string(), expected);
    }
}
