//! Every rule at, just inside and just outside its limit.
//!
//! Each case is data: a request and the violations expected, as
//! `rule: message` lines, so a case reads as what a user would see.

use kling_core::rules::{Violation, limits};
use kling_core::{
    AnimateRequest, AspectRatio, ComposeRequest, EditRequest, Element, Media, ReferRequest,
    Request, RequestSpec, Task,
};

fn url(name: &str) -> Media {
    Media::url(format!("https://media.example/{name}"))
}

fn video() -> Media {
    url("in.mp4")
}

fn element(references: usize) -> Element {
    (0..references).fold(Element::new(url("front.png")), |e, i| {
        e.reference(url(&format!("side{i}.png")))
    })
}

fn edit(prompt: &str) -> EditRequest {
    EditRequest::new(video(), prompt)
}

fn refer(prompt: &str) -> ReferRequest {
    ReferRequest::new(video(), prompt)
}

fn compose(prompt: &str) -> ComposeRequest {
    ComposeRequest::new(prompt).image(url("a.png"))
}

/// Validates `request` and compares what is broken with `expect`, one
/// `rule: message` line per violation (empty when the request is valid).
#[track_caller]
fn check(request: impl Into<Request>, expect: &[&str]) {
    let request = request.into();
    let got: Vec<String> = match request.validate() {
        Ok(()) => Vec::new(),
        Err(err) => {
            assert!(err.is_invalid_request(), "{err}");
            assert!(!err.may_have_been_sent());
            err.violations()
                .iter()
                .map(|v| format!("{}: {v}", v.rule()))
                .collect()
        }
    };
    assert_eq!(got, expect, "for {request:?}");
}

/// Like [`check`], for a request given in its serialized form.
#[track_caller]
fn check_json(json: &str, expect: &[&str]) {
    let spec: RequestSpec = serde_json::from_str(json).expect("a well-formed spec");
    match Request::try_from(spec) {
        Ok(request) => check(request, expect),
        Err(err) => {
            let got: Vec<String> = err
                .violations()
                .iter()
                .map(|v| format!("{}: {v}", v.rule()))
                .collect();
            assert_eq!(got, expect, "for {json}");
        }
    }
}

#[test]
fn prompt_length() {
    let max = limits::PROMPT_MAX_CHARS;
    check(edit("x"), &[]);
    check(edit(&"x".repeat(max - 1)), &[]);
    check(edit(&"x".repeat(max)), &[]);
    check(
        edit(&"x".repeat(max + 1)),
        &["prompt_length: prompt: 2501 characters, the limit is 2500"],
    );
    // Characters, not bytes: 2,500 two-byte characters pass.
    check(edit(&"é".repeat(max)), &[]);
    check(
        edit(&"é".repeat(max + 1)),
        &["prompt_length: prompt: 2501 characters, the limit is 2500"],
    );
}

#[test]
fn prompt_empty() {
    let empty = "prompt_empty: prompt: empty; write an instruction of 1 to 2500 characters";
    check(edit(""), &[empty]);
    check(edit(" \n\t"), &[empty]);
    check(compose(""), &[empty]);
    check(AnimateRequest::new(url("a.png"), ""), &[empty]);
}

#[test]
fn inputs_with_a_video() {
    let with = |images: usize, elements: usize| {
        let request = (0..images).fold(edit("go"), |r, i| r.image(url(&format!("{i}.png"))));
        (0..elements).fold(request, |r, _| r.element(element(1)))
    };
    check(with(0, 0), &[]);
    check(with(3, 0), &[]);
    check(with(4, 0), &[]);
    check(with(2, 2), &[]);
    check(with(0, 4), &[]);
    let over =
        "input_count: images+elements: 3 images and 2 elements make 5, the limit with a video is 4";
    check(with(3, 2), &[over]);
    check(
        with(5, 0),
        &[
            "input_count: images+elements: 5 images and 0 elements make 5, the limit with a video is 4",
        ],
    );
    // The same limit holds for refer.
    let refer_over = (0..5).fold(refer("go"), |r, i| r.image(url(&format!("{i}.png"))));
    check(
        refer_over,
        &[
            "input_count: images+elements: 5 images and 0 elements make 5, the limit with a video is 4",
        ],
    );
}

#[test]
fn inputs_without_a_video() {
    let with = |images: usize, elements: usize| {
        let request = (0..images).fold(ComposeRequest::new("go"), |r, i| {
            r.image(url(&format!("{i}.png")))
        });
        (0..elements).fold(request, |r, _| r.element(element(1)))
    };
    check(with(1, 0), &[]);
    check(with(0, 1), &[]);
    check(with(6, 0), &[]);
    check(with(7, 0), &[]);
    check(with(3, 4), &[]);
    check(
        with(4, 4),
        &[
            "input_count: images+elements: 4 images and 4 elements make 8, the limit without a video is 7",
        ],
    );
    check(
        with(0, 0),
        &[
            "input_missing: images+elements: none given; compose needs at least 1 image or element (use --image or --element)",
        ],
    );
}

#[test]
fn element_reference_images() {
    check(edit("go").element(element(1)), &[]);
    check(edit("go").element(element(4)), &[]);
    check(
        edit("go").element(element(0)),
        &["element_references: elements[0].reference_images: 0 images, allowed 1 to 4"],
    );
    check(
        edit("go").element(element(2)).element(element(5)),
        &["element_references: elements[1].reference_images: 5 images, allowed 1 to 4"],
    );
}

#[test]
fn duration_range() {
    let out =
        |s: u32| format!("duration_range: duration: {s} s, allowed 3 to 10 s in whole seconds");
    for (seconds, ok) in [
        (0, false),
        (2, false),
        (3, true),
        (4, true),
        (9, true),
        (10, true),
        (11, false),
        (u32::MAX, false),
    ] {
        let expect: Vec<String> = if ok { vec![] } else { vec![out(seconds)] };
        let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
        check(refer("go").duration(seconds), &expect);
        check(compose("go").duration(seconds), &expect);
        check(
            AnimateRequest::new(url("a.png"), "go")
                .last(url("b.png"))
                .duration(seconds),
            &expect,
        );
    }
}

#[test]
fn single_frame_durations() {
    let first = || AnimateRequest::new(url("a.png"), "go");
    check(first().duration(5), &[]);
    check(first().duration(10), &[]);
    for seconds in [3, 4, 6, 9] {
        check(
            first().duration(seconds),
            &[&format!(
                "duration_choice: duration: {seconds} s, allowed 5 or 10 s when animating a single frame (add a last frame for other lengths)"
            )],
        );
    }
    // Outside 3-10 the range rule speaks, once.
    check(
        first().duration(2),
        &["duration_range: duration: 2 s, allowed 3 to 10 s in whole seconds"],
    );
}

#[test]
fn fields_a_task_does_not_take() {
    check_json(
        r#"{"task": "edit", "video": "https://media.example/in.mp4", "prompt": "go", "aspect_ratio": "1:1"}"#,
        &[
            "field_not_allowed: aspect_ratio: not taken by the edit task (1:1 given; an edit keeps its input's framing and length)",
        ],
    );
    check_json(
        r#"{"task": "edit", "video": "https://media.example/in.mp4", "prompt": "go", "duration": 5}"#,
        &[
            "field_not_allowed: duration: not taken by the edit task (5 s given; an edit keeps its input's framing and length)",
        ],
    );
    check_json(
        r#"{"task": "animate", "images": ["https://media.example/a.png"], "prompt": "go", "duration": 5, "aspect_ratio": "16:9"}"#,
        &["field_not_allowed: aspect_ratio: not taken by the animate task (16:9 given)"],
    );
    check_json(
        r#"{"task": "compose", "video": "https://media.example/in.mp4", "images": ["https://media.example/a.png"], "prompt": "go", "keep_audio": true}"#,
        &[
            "field_not_allowed: video: not taken by the compose task (https://media.example/in.mp4 given)",
            "field_not_allowed: keep_audio: not taken by the compose task (true given)",
        ],
    );
    // What each task does take passes.
    check_json(
        r#"{"task": "refer", "video": "https://media.example/in.mp4", "prompt": "go", "duration": 10, "aspect_ratio": "9:16", "keep_audio": true}"#,
        &[],
    );
}

#[test]
fn frames() {
    let frames = |n: usize| {
        let images: Vec<String> = (0..n)
            .map(|i| format!("\"https://media.example/{i}.png\""))
            .collect();
        format!(
            r#"{{"task": "animate", "images": [{}], "prompt": "go", "duration": 5}}"#,
            images.join(",")
        )
    };
    check_json(&frames(1), &[]);
    check_json(&frames(2), &[]);
    check_json(
        &frames(3),
        &[
            "frame_count: images: 3 frames given, animate takes a first and an optional last frame (2 at most)",
        ],
    );
    check_json(
        &frames(0),
        &["field_missing: images: required for the animate task"],
    );
    check_json(
        r#"{"task": "refer", "prompt": "go"}"#,
        &["field_missing: video: required for the refer task"],
    );
}

#[test]
fn prompt_references() {
    let two_images = |prompt: &str| edit(prompt).image(url("a.png")).image(url("b.png"));
    check(two_images("@Video1 with @Image1 and @Image2"), &[]);
    for prompt in [
        "Use @Image3 here",
        "Use [@Image3] here",
        "Use <<<image_3>>> here",
    ] {
        check(
            two_images(prompt),
            &[
                "prompt_reference: prompt: @Image3 at character 4 refers to image 3, but the request has 2 images",
            ],
        );
    }
    check(
        two_images("@Image0"),
        &[
            "prompt_reference: prompt: @Image0 at character 0 refers to image 0, but the request has 2 images",
        ],
    );
    check(
        edit("@Video2"),
        &[
            "prompt_reference: prompt: @Video2 at character 0 refers to video 2, but the request has 1 video",
        ],
    );
    check(
        compose("Animate @Video1"),
        &[
            "prompt_reference: prompt: @Video1 at character 8 refers to video 1, but the request has 0 videos",
        ],
    );
    check(
        edit("Add @Element1"),
        &[
            "prompt_reference: prompt: @Element1 at character 4 refers to element 1, but the request has 0 elements",
        ],
    );
    check(edit("Add @Element1").element(element(1)), &[]);
    // A number too large to read is a reference all the same, to no input.
    for prompt in [
        "Use @Video99999999999999999999",
        "Use [@Video99999999999999999999]",
        "Use <<<video_99999999999999999999>>>",
    ] {
        check(
            edit(prompt),
            &[
                "prompt_reference: prompt: the @Video… reference at character 4 has a number too large to be an input; the request has 1 video",
            ],
        );
    }
    check(
        edit("Use @Video4294967294"),
        &[
            "prompt_reference: prompt: @Video4294967294 at character 4 refers to video 4294967294, but the request has 1 video",
        ],
    );
    // An address is text, not a reference to a missing input.
    check(edit("Mail ann@Video2.com the result"), &[]);
    check(
        edit("Mail ann @Video2"),
        &[
            "prompt_reference: prompt: @Video2 at character 9 refers to video 2, but the request has 1 video",
        ],
    );
    // For animate, the first frame is @Image1 and the last @Image2.
    let animate = AnimateRequest::new(url("a.png"), "From @Image1 to @Image2");
    check(animate.clone().last(url("b.png")), &[]);
    check(
        animate,
        &[
            "prompt_reference: prompt: @Image2 at character 16 refers to image 2, but the request has 1 image",
        ],
    );
}

#[test]
fn urls() {
    check(
        edit("go").image(Media::url("http://media.example/a.png")),
        &[],
    );
    check(
        edit("go")
            .image(url("a.png"))
            .image(Media::url("ftp://media.example/b.png")),
        &[
            "url_scheme: images[1]: URL scheme \"ftp\" is not allowed; use http or https or a local file",
        ],
    );
    check(
        EditRequest::new(Media::url("file:///tmp/in.mp4"), "go"),
        &[
            "url_scheme: video: URL scheme \"file\" is not allowed; use http or https or a local file",
        ],
    );
    check(
        EditRequest::new(Media::url("data:video/mp4;base64,AAAA"), "go"),
        &[
            "url_scheme: video: URL scheme \"data\" is not allowed; use http or https or a local file",
        ],
    );
    check(
        edit("go").element(Element::new(url("f.png")).reference(Media::url("not a url"))),
        &[
            "url_invalid: elements[0].reference_images[0]: not a valid URL (relative URL without a base)",
        ],
    );
    check(
        EditRequest::new(Media::url("https://"), "go"),
        &["url_invalid: video: not a valid URL (empty host)"],
    );
    check(
        AnimateRequest::new(url("a.png"), "go").last(Media::url("gopher://x/y")),
        &[
            "url_scheme: last: URL scheme \"gopher\" is not allowed; use http or https or a local file",
        ],
    );
}

#[test]
fn empty_bytes() {
    check(
        compose("go").image(Media::bytes(Vec::new(), Some("image/png"))),
        &["media_empty: images[1]: empty (0 bytes)"],
    );
    let png = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/image.png"
    ))
    .unwrap();
    check(
        compose("go").image(Media::bytes(png, Some("image/png"))),
        &[],
    );
    // Bytes are probed like files.
    check(
        compose("go").image(Media::bytes(vec![1], None)),
        &[
            "image_format: images[1]: data in no known format; an image must be JPEG, PNG or WebP (GIF too where a provider takes it)",
        ],
    );
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let request = ReferRequest::new(Media::url("ftp://x/in.mp4"), "@Image1 ".repeat(400))
        .duration(42)
        .aspect_ratio(AspectRatio::Square);
    let err = Request::from(request).validate().unwrap_err();
    let rules: Vec<_> = err.violations().iter().map(Violation::rule).collect();
    let mut expect = vec!["prompt_length"];
    expect.extend(std::iter::repeat_n("prompt_reference", 400));
    expect.extend(["duration_range", "url_scheme"]);
    assert_eq!(rules, expect);
}

#[test]
fn every_task_round_trips_through_its_serialized_form() {
    let requests: Vec<Request> = vec![
        edit("go").image(url("a.png")).keep_audio(true).into(),
        refer("go")
            .element(element(2))
            .duration(8)
            .aspect_ratio(AspectRatio::Portrait)
            .into(),
        AnimateRequest::new(url("a.png"), "go")
            .last(url("b.png"))
            .duration(7)
            .into(),
        compose("go").element(element(1)).into(),
    ];
    for request in requests {
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["task"], request.task().as_str());
        let back: Request = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, request, "{json}");
    }
    // Defaults are written out, so a stored request means the same later.
    let json = serde_json::to_value(Request::from(refer("go"))).unwrap();
    assert_eq!(json["keep_audio"], false);
    assert_eq!(json["duration"], 5);
    assert_eq!(json["aspect_ratio"], "16:9");
    assert_eq!(json["mode"], "pro");
    assert_eq!(json["model"], "o1");
    assert_eq!(
        serde_json::from_value::<Request>(json).unwrap().task(),
        Task::Refer
    );
}

#[test]
fn unknown_fields_in_a_spec_are_refused() {
    let err = serde_json::from_str::<RequestSpec>(
        r#"{"task": "edit", "video": "in.mp4", "prompt": "go", "keep_audo": true}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `keep_audo`"),
        "{err}"
    );
}
