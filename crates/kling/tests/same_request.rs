//! One neutral request on every provider: the bodies differ only in
//! the providers' documented ways (field names, reference syntax, where
//! the model name goes, ShortAPI's `mode` and string durations), and the
//! defaults that providers disagree on are sent explicitly on each.

#![cfg(all(
    feature = "shortapi",
    feature = "aimlapi",
    feature = "oxen",
    feature = "fal"
))]

use std::collections::BTreeMap;

use kling::prompt::{Prompt, Syntax};
use kling::{
    AnimateRequest, AspectRatio, ComposeRequest, EditRequest, Element, Media, PreparedCall, Request,
};
use serde_json::{Value, json};

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

/// A provider's body in neutral terms: each provider's documented field
/// names mapped back, prompts back to `@Image1` syntax, durations as
/// numbers. Whatever is left unmapped stays under its own name, so an
/// undocumented difference shows up as a mismatch.
fn neutral(provider: &str, call: &PreparedCall) -> BTreeMap<String, Value> {
    let fields = if provider == "shortapi" {
        call.body["args"].clone()
    } else {
        call.body.clone()
    };
    let mut out = BTreeMap::new();
    let mut images: Vec<Value> = Vec::new();
    for (name, value) in fields.as_object().unwrap() {
        let name = name.as_str();
        let value = value.clone();
        match (provider, name) {
            // Where the model and the task go is each provider's own.
            (_, "model") | ("shortapi", "action") => {}
            (_, "prompt") => {
                let prompt = Prompt::parse(value.as_str().unwrap()).render(Syntax::At);
                out.insert("prompt".to_owned(), json!(prompt));
            }
            (_, "duration") => {
                let seconds = match &value {
                    Value::String(text) => text.parse::<u64>().unwrap(),
                    other => other.as_u64().unwrap(),
                };
                out.insert("duration".to_owned(), json!(seconds));
            }
            ("shortapi", "video") | ("aimlapi" | "fal", "video_url") | ("oxen", "input_video") => {
                out.insert("video".to_owned(), value);
            }
            ("shortapi", "images")
            | ("aimlapi", "image_list")
            | ("oxen", "input_image")
            | ("fal", "image_urls") => match value {
                Value::Array(list) => images.extend(list),
                single => images.insert(0, single),
            },
            ("aimlapi", "image_url") | ("fal", "start_image_url") => images.insert(0, value),
            ("aimlapi", "last_image_url")
            | ("oxen", "tail_image_url")
            | ("fal", "end_image_url") => images.push(value),
            _ => {
                out.insert(name.to_owned(), value);
            }
        }
    }
    if !images.is_empty() {
        out.insert("images".to_owned(), Value::Array(images));
    }
    out
}

/// The body every provider in the facade's list prepares for `request`.
fn prepare(request: &Request) -> Vec<(&'static str, PreparedCall)> {
    kling::PROVIDERS
        .iter()
        .map(|p| {
            let provider = p.connect(p.base_url, "k".into()).unwrap();
            let checked = provider.capabilities().validate(request).unwrap();
            (p.name(), provider.prepare(&checked).unwrap())
        })
        .collect()
}

#[test]
fn one_request_every_body_differing_only_as_documented() {
    let dog = Element::new(url("dog-front.png")).reference(url("dog-side.png"));
    let requests: Vec<(&str, Request, &[&str])> = vec![
        (
            "edit",
            EditRequest::new(
                url("street.mp4"),
                "Put @Element1 under the sky of @Image1 in @Video1",
            )
            .image(url("sky.jpg"))
            .element(dog.clone())
            .into(),
            &["keep_audio"],
        ),
        (
            "animate",
            AnimateRequest::new(url("bud.png"), "From @Image1 to @Image2")
                .last(url("bloom.png"))
                .into(),
            &["duration"],
        ),
        (
            "compose",
            ComposeRequest::new("@Element1 walks through @Image1")
                .image(url("market.jpg"))
                .element(dog)
                .aspect_ratio(AspectRatio::Portrait)
                .into(),
            &["duration", "aspect_ratio"],
        ),
    ];
    for (task, request, explicit) in requests {
        let calls = prepare(&request);
        let mut bodies: Vec<(&str, BTreeMap<String, Value>)> = calls
            .iter()
            .map(|(provider, call)| (*provider, neutral(provider, call)))
            .collect();
        // ShortAPI alone has a mode field; the others run pro, which is
        // what the request asks for (std is refused there).
        let (_, shortapi) = &mut bodies[0];
        assert_eq!(shortapi.remove("mode"), Some(json!("pro")), "{task}");
        for (provider, body) in &bodies {
            for field in explicit {
                assert!(
                    body.contains_key(*field),
                    "{task}: {provider} leaves out {field}"
                );
            }
            assert_eq!(
                body, &bodies[0].1,
                "{task}: {provider} differs from shortapi"
            );
        }
        // The reference syntax is each provider's own.
        let prompts: Vec<&str> = calls
            .iter()
            .map(|(provider, call)| {
                let body = if *provider == "shortapi" {
                    &call.body["args"]
                } else {
                    &call.body
                };
                body["prompt"].as_str().unwrap()
            })
            .collect();
        assert!(prompts[0].contains("[@Image1]"), "{task}: {}", prompts[0]);
        assert!(prompts[1].contains("@Image1") && !prompts[1].contains('['));
        assert_eq!(prompts[1], prompts[2]);
    }
}
