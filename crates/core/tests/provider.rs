//! The capability check and the object-safe `Provider` trait.

use std::sync::Mutex;

use async_trait::async_trait;
use kling_core::provider::{Capabilities, Feature, Offering, PreparedCall, Provider};
use kling_core::{
    AnimateRequest, Checked, ComposeRequest, EditRequest, Element, Error, JobHandle, JobState,
    JobStatus, Media, Model, ReferRequest, Request, Task,
};

const CATALOGUE: &[Offering] = &[
    Offering::new(Task::Edit, Model::O1, "o1-edit").features(&[
        Feature::Images,
        Feature::Elements,
        Feature::KeepAudio,
    ]),
    Offering::new(Task::Edit, Model::O3, "o3-edit").features(&[Feature::Images, Feature::Elements]),
    Offering::new(Task::Refer, Model::O1, "o1-refer")
        .features(&[Feature::Images])
        .durations(&[5, 10]),
    Offering::new(Task::Animate, Model::O1, "o1-i2v").features(&[Feature::LastFrame]),
];

const CAPS: Capabilities = Capabilities::new("fake", CATALOGUE).with_cancel();

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

#[track_caller]
fn check(request: impl Into<Request>, expect: Result<&str, &str>) {
    let got = CAPS.check(&request.into());
    match (got, expect) {
        (Ok(offering), Ok(wire)) => assert_eq!(offering.wire_model, wire),
        (Err(err), Err(message)) => {
            assert!(!err.may_have_been_sent());
            assert_eq!(err.to_string(), message);
        }
        (got, expect) => panic!("got {got:?}, expected {expect:?}"),
    }
}

#[test]
fn capability_check() {
    let edit = || EditRequest::new(url("in.mp4"), "go");
    check(edit(), Ok("o1-edit"));
    check(edit().keep_audio(true), Ok("o1-edit"));
    check(edit().model(Model::O3), Ok("o3-edit"));
    // keep_audio false is what every provider assumes, so it needs no support.
    check(edit().model(Model::O3).keep_audio(false), Ok("o3-edit"));
    check(
        edit().model(Model::O3).keep_audio(true),
        Err("fake does not offer keeping the audio (keep_audio) for edit on o3; nothing was sent"),
    );
    check(
        ReferRequest::new(url("in.mp4"), "go")
            .element(Element::new(url("f.png")).reference(url("s.png"))),
        Err("fake does not offer elements (elements) for refer on o1; nothing was sent"),
    );
    check(
        ReferRequest::new(url("in.mp4"), "go").model(Model::O3),
        Err("fake does not offer model o3 (it offers o1) for refer; nothing was sent"),
    );
    check(
        ComposeRequest::new("go").image(url("a.png")),
        Err("fake does not offer the compose task; nothing was sent"),
    );
    check(
        ReferRequest::new(url("in.mp4"), "go").duration(10),
        Ok("o1-refer"),
    );
    check(
        ReferRequest::new(url("in.mp4"), "go").duration(7),
        Err(
            "invalid request, nothing was sent: duration: 7 s, allowed 5 or 10 s on fake for refer",
        ),
    );
    check(
        AnimateRequest::new(url("a.png"), "go").last(url("b.png")),
        Ok("o1-i2v"),
    );
}

/// A provider that records what it is asked, behind `dyn Provider`.
#[derive(Debug, Default)]
struct Recorder {
    submitted: Mutex<Vec<Request>>,
}

#[async_trait]
impl Provider for Recorder {
    fn capabilities(&self) -> &Capabilities {
        &CAPS
    }

    fn prepare(&self, checked: &Checked) -> Result<PreparedCall, Error> {
        let offering = CAPS.accept(checked)?;
        let body = serde_json::json!({ "prompt": checked.request().prompt() });
        Ok(PreparedCall::new(
            "POST",
            "https://fake.example/jobs".into(),
            body,
            offering.wire_model,
        ))
    }

    async fn submit(&self, checked: &Checked) -> Result<JobHandle, Error> {
        let offering = CAPS.accept(checked)?;
        let mut submitted = self.submitted.lock().unwrap();
        submitted.push(checked.request().clone());
        Ok(
            JobHandle::new(self.name(), submitted.len().to_string())
                .with_model(offering.wire_model),
        )
    }

    async fn status(&self, job: &JobHandle) -> Result<JobStatus, Error> {
        let state = if job.id == "1" {
            JobState::Running
        } else {
            JobState::Queued
        };
        Ok(JobStatus::new(state, serde_json::json!({ "id": job.id })))
    }
}

#[tokio::test]
async fn provider_is_object_safe_and_default_cancel_is_unsupported() {
    let recorder = Recorder::default();
    let provider: &dyn Provider = &recorder;
    let checked = CAPS
        .validate(&EditRequest::new(url("in.mp4"), "go").into())
        .unwrap();
    let job = provider.submit(&checked).await.unwrap();
    assert_eq!(job.to_string(), "fake:1");
    assert_eq!(job.model.as_deref(), Some("o1-edit"));
    assert_eq!(
        provider.status(&job).await.unwrap().state,
        JobState::Running
    );

    // An invalid request never becomes a checked one, so it cannot be
    // submitted at all; one checked for another provider is refused.
    let invalid = CAPS
        .validate(&EditRequest::new(url("in.mp4"), "").into())
        .unwrap_err();
    assert!(invalid.is_invalid_request());
    let other = Capabilities::new("other", CAPS.offerings);
    let theirs = other
        .validate(&EditRequest::new(url("in.mp4"), "go").into())
        .unwrap();
    assert!(provider.submit(&theirs).await.unwrap_err().is_unsupported());
    assert_eq!(
        recorder.submitted.lock().unwrap().len(),
        1,
        "nothing sent for a request checked for another provider"
    );

    let err = provider.cancel(&job).await.unwrap_err();
    assert!(err.is_unsupported());
    assert_eq!(
        err.to_string(),
        "fake does not offer cancelling jobs; nothing was sent"
    );
}
