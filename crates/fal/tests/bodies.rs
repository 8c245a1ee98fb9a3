//! The exact input for every task fal offers, in both modes, as
//! snapshots, each checked against `schemas/published/fal` for the
//! endpoint it is submitted to; and what is refused before submitting.

use kling_core::{
    AnimateRequest, AspectRatio, ComposeRequest, EditRequest, Element, Media, Mode, Model,
    ReferRequest, Request,
};
use kling_fal::Fal;
use kling_sandbox::{Provider as Emulated, published_schema_errors};

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

fn dog() -> Element {
    Element::new(url("dog-front.png")).reference(url("dog-side.png"))
}

fn fal() -> Fal {
    Fal::new("fal-test".into()).unwrap().without_stream()
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
    let refer = |model| {
        ReferRequest::new(
            url("drone.mp4"),
            "Follow the camera of @Video1 over @Image1",
        )
        .image(url("forest.jpg"))
        .duration(7)
        .aspect_ratio(AspectRatio::Portrait)
        .model(model)
    };
    vec![
        ("edit-o1", edit(Model::O1).keep_audio(true).into()),
        (
            "edit-o1-std-plain",
            EditRequest::new(url("street.mp4"), "Make it snow")
                .mode(Mode::Std)
                .into(),
        ),
        ("edit-o3", edit(Model::O3).into()),
        ("edit-o3-std", edit(Model::O3).mode(Mode::Std).into()),
        ("refer-o1", refer(Model::O1).into()),
        ("refer-o3-std", refer(Model::O3).mode(Mode::Std).into()),
        (
            "animate-first",
            AnimateRequest::new(url("bud.png"), "@Image1 opens in the sun").into(),
        ),
        (
            "animate-first-last-std",
            AnimateRequest::new(url("bud.png"), "From @Image1 to @Image2")
                .last(url("bloom.png"))
                .duration(10)
                .mode(Mode::Std)
                .into(),
        ),
        (
            "compose",
            ComposeRequest::new("@Element1 walks through @Image1")
                .image(url("market.jpg"))
                .element(dog())
                .aspect_ratio(AspectRatio::Square)
                .duration(3)
                .into(),
        ),
    ]
}

#[test]
fn every_body_matches_its_snapshot_and_the_published_schema() {
    for (name, request) in cases() {
        let call = kling_sandbox::prepare(&fal(), &request).unwrap();
        let errors = published_schema_errors(Emulated::Fal, &call.model, &call.body);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(call.url, format!("https://queue.fal.run/{}", call.model));
        insta::assert_json_snapshot!(name, (call.model.as_str(), &call.body));
    }
}

#[test]
fn keep_audio_is_always_sent_and_std_goes_to_the_std_endpoint() {
    for (name, request) in cases() {
        let call = kling_sandbox::prepare(&fal(), &request).unwrap();
        let has_video = matches!(request, Request::Edit(_) | Request::Refer(_));
        // O3's default is true, O1's false: an edit never relies on either.
        assert_eq!(
            call.body.get("keep_audio").is_some(),
            has_video,
            "{name}: {}",
            call.body
        );
        assert_eq!(
            call.model.contains("/standard/"),
            request.mode() == Mode::Std,
            "{name}: {}",
            call.model
        );
    }
}

#[test]
fn what_fal_refuses_is_refused_before_submitting() {
    let four_angles = Element::new(url("f.png"))
        .reference(url("a.png"))
        .reference(url("b.png"))
        .reference(url("c.png"))
        .reference(url("d.png"));
    let err = kling_sandbox::prepare(
        &fal(),
        &EditRequest::new(url("in.mp4"), "@Element1 dances")
            .element(four_angles)
            .into(),
    )
    .unwrap_err();
    // A rule of fal's, checked with the others: before any upload.
    assert!(err.is_invalid_request(), "{err}");
    assert!(
        err.to_string()
            .contains("elements[0].reference_images: 4 images, allowed 1 to 3"),
        "{err}"
    );
    let err = kling_sandbox::prepare(
        &fal(),
        &AnimateRequest::new(url("a.png"), "go").duration(12).into(),
    )
    .unwrap_err();
    assert!(err.is_invalid_request(), "{err}");
    // fal's image-to-video takes 3 to 10 s from a single frame, where
    // Kling's common rule allows 5 or 10 s only.
    let single = Request::from(AnimateRequest::new(url("a.png"), "go").duration(7));
    let call = kling_sandbox::prepare(&fal(), &single).unwrap();
    assert_eq!(call.body["duration"], "7");
    assert_eq!(
        single.validate().unwrap_err().violations()[0].rule(),
        "duration_choice"
    );
    // A local file reaches fal through its storage, before the create: the
    // adapter's own call takes URLs only.
    let clip = format!(
        "{}/../core/tests/fixtures/moov_at_end.mp4",
        env!("CARGO_MANIFEST_DIR")
    );
    let local = Request::from(EditRequest::new(Media::file(clip), "go"));
    let checked = kling_fal::DESCRIPTOR.capabilities.validate(&local).unwrap();
    let err = kling_core::provider::Provider::prepare(&fal(), &checked).unwrap_err();
    assert!(err.to_string().contains("fetches inputs by URL"), "{err}");
}

#[test]
fn a_webhook_rides_on_the_submit_url_and_never_in_the_attempt() {
    let request = Request::from(EditRequest::new(url("in.mp4"), "Snow"));
    let checked = kling_fal::DESCRIPTOR
        .capabilities
        .validate(&request)
        .unwrap()
        .with_callback_url("https://hooks.example/kling/fal?token=abc".to_owned());
    let call = kling_core::provider::Provider::prepare(&fal(), &checked).unwrap();
    assert_eq!(
        call.url,
        "https://queue.fal.run/fal-ai/kling-video/o1/video-to-video/edit?fal_webhook=https%3A%2F%2Fhooks.example%2Fkling%2Ffal%3Ftoken%3Dabc"
    );
}

#[test]
fn videos_up_to_fals_published_10_05_seconds_pass_here_only() {
    // 10.04 s: over Kling's 10 s, within fal's "Max duration: 10.05s".
    let clip = format!(
        "{}/../core/tests/fixtures/too_long.mp4",
        env!("CARGO_MANIFEST_DIR")
    );
    let request = Request::from(EditRequest::new(Media::file(clip), "Snow"));
    assert!(
        kling_fal::DESCRIPTOR
            .capabilities
            .validate(&request)
            .is_ok()
    );
    let err = request.validate().unwrap_err();
    assert_eq!(err.violations()[0].rule(), "video_duration");
    assert!(err.to_string().contains("allowed 3 to 10 s"), "{err}");
    // A limit with a fraction is said with it.
    let strict = kling_core::provider::Capabilities::new("strict", &[])
        .with_video_max_duration(std::time::Duration::from_millis(10_020));
    let err = strict.validate(&request).unwrap_err();
    assert!(
        err.to_string()
            .contains("10.040 s long, allowed 3 to 10.020 s"),
        "{err}"
    );
}

#[tokio::test]
async fn a_create_that_cannot_connect_never_shows_the_webhooks_token() {
    use std::fmt::Write as _;

    // Nothing listens on port 9 of loopback.
    let fal = Fal::with_base_url("http://127.0.0.1:9/fal", "fal-test".into())
        .unwrap()
        .without_stream();
    let checked = kling_fal::DESCRIPTOR
        .capabilities
        .validate(&EditRequest::new(url("in.mp4"), "Snow").into())
        .unwrap()
        .with_callback_url("http://127.0.0.1:8/fal?token=s3cr3t".to_owned());
    let err = kling_core::provider::Provider::submit(&fal, &checked)
        .await
        .unwrap_err();
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let _ = write!(text, " {cause} {cause:?}");
        source = cause.source();
    }
    assert!(!err.may_have_been_sent(), "{err}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(
        text.contains("POST http://127.0.0.1:9/fal/fal-ai/kling-video/o1/video-to-video/edit"),
        "{text}"
    );
}
