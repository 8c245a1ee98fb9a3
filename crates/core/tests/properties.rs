//! Properties of validation and prompt references over generated inputs.

use kling_core::prompt::{Prompt, RefKind, Reference, Segment, Syntax};
use kling_core::rules::limits;
use kling_core::{
    AnimateRequest, AspectRatio, ComposeRequest, EditRequest, Element, Media, Mode, Model,
    ReferRequest, Request, RequestSpec,
};
use proptest::prelude::*;

fn any_url() -> impl Strategy<Value = Media> {
    ("(http|https)", "[a-z]{1,12}", "[a-z0-9/._-]{0,30}")
        .prop_map(|(scheme, host, path)| Media::url(format!("{scheme}://{host}.example/{path}")))
}

fn any_element() -> impl Strategy<Value = Element> {
    (
        any_url(),
        prop::collection::vec(any_url(), limits::ELEMENT_REFERENCE_IMAGES),
    )
        .prop_map(|(front, refs)| {
            refs.into_iter()
                .fold(Element::new(front), Element::reference)
        })
}

/// Text that cannot form a reference and is not blank.
fn plain_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.!?éü]{0,40}[a-zA-Z]"
}

/// A prompt whose references point only at inputs that exist.
fn valid_prompt(videos: u32, images: u32, elements: u32) -> impl Strategy<Value = String> {
    let mut kinds = Vec::new();
    if videos > 0 {
        kinds.push(Just((RefKind::Video, videos)).boxed());
    }
    if images > 0 {
        kinds.push(Just((RefKind::Image, images)).boxed());
    }
    if elements > 0 {
        kinds.push(Just((RefKind::Element, elements)).boxed());
    }
    let reference = if kinds.is_empty() {
        Just(None).boxed()
    } else {
        prop::option::of(
            prop::strategy::Union::new(kinds)
                .prop_flat_map(|(kind, count)| (Just(kind), 1..=count))
                .prop_map(|(kind, index)| Reference { kind, index }),
        )
        .boxed()
    };
    let syntax = prop_oneof![
        Just(Syntax::At),
        Just(Syntax::Bracketed),
        Just(Syntax::Kling)
    ];
    (
        prop::collection::vec((plain_text(), reference), 1..6),
        syntax,
    )
        .prop_map(|(parts, syntax)| {
            let segments = parts.into_iter().flat_map(|(text, reference)| {
                // A space keeps text from gluing onto the reference before it.
                std::iter::once(Segment::Text(format!(" {text}")))
                    .chain(reference.map(Segment::Reference))
            });
            Prompt::from_segments(segments).render(syntax)
        })
}

fn any_model() -> impl Strategy<Value = Model> {
    prop::sample::select(Model::ALL)
}

fn any_mode() -> impl Strategy<Value = Mode> {
    prop::sample::select(Mode::ALL)
}

fn any_aspect() -> impl Strategy<Value = AspectRatio> {
    prop::sample::select(AspectRatio::ALL)
}

/// A request of any task built only from valid parts.
fn valid_request() -> impl Strategy<Value = Request> {
    let with_video = (0..=limits::MAX_INPUTS_WITH_VIDEO).prop_flat_map(|total| {
        (0..=total).prop_flat_map(move |images| {
            let elements = total - images;
            (
                any_url(),
                prop::collection::vec(any_url(), images),
                prop::collection::vec(any_element(), elements),
                valid_prompt(1, count(images), count(elements)),
                any::<bool>(),
                limits::DURATION_SECS,
                any_aspect(),
                any_model(),
                any_mode(),
                any::<bool>(),
            )
                .prop_map(
                    |(
                        video,
                        images,
                        elements,
                        prompt,
                        keep_audio,
                        duration,
                        aspect,
                        model,
                        mode,
                        is_edit,
                    )| {
                        if is_edit {
                            let r = EditRequest::new(video, prompt)
                                .keep_audio(keep_audio)
                                .model(model)
                                .mode(mode);
                            let r = images.into_iter().fold(r, EditRequest::image);
                            Request::from(elements.into_iter().fold(r, EditRequest::element))
                        } else {
                            let r = ReferRequest::new(video, prompt)
                                .keep_audio(keep_audio)
                                .duration(duration)
                                .aspect_ratio(aspect)
                                .model(model)
                                .mode(mode);
                            let r = images.into_iter().fold(r, ReferRequest::image);
                            Request::from(elements.into_iter().fold(r, ReferRequest::element))
                        }
                    },
                )
        })
    });
    let compose = (1..=limits::MAX_INPUTS_WITHOUT_VIDEO).prop_flat_map(|total| {
        (0..=total).prop_flat_map(move |images| {
            let elements = total - images;
            (
                prop::collection::vec(any_url(), images),
                prop::collection::vec(any_element(), elements),
                valid_prompt(0, count(images), count(elements)),
                limits::DURATION_SECS,
                any_aspect(),
                any_model(),
                any_mode(),
            )
                .prop_map(
                    |(images, elements, prompt, duration, aspect, model, mode)| {
                        let r = ComposeRequest::new(prompt)
                            .duration(duration)
                            .aspect_ratio(aspect)
                            .model(model)
                            .mode(mode);
                        let r = images.into_iter().fold(r, ComposeRequest::image);
                        Request::from(elements.into_iter().fold(r, ComposeRequest::element))
                    },
                )
        })
    });
    let animate = any::<bool>().prop_flat_map(|has_last| {
        let durations = if has_last {
            limits::DURATION_SECS.boxed()
        } else {
            prop::sample::select(limits::SINGLE_FRAME_DURATIONS).boxed()
        };
        (
            any_url(),
            any_url(),
            valid_prompt(0, 1 + u32::from(has_last), 0),
            durations,
            any_model(),
            any_mode(),
        )
            .prop_map(move |(first, last, prompt, duration, model, mode)| {
                let r = AnimateRequest::new(first, prompt)
                    .duration(duration)
                    .model(model)
                    .mode(mode);
                Request::from(if has_last { r.last(last) } else { r })
            })
    });
    prop_oneof![with_video, compose, animate]
}

fn count(n: usize) -> u32 {
    u32::try_from(n).expect("small counts")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_from_valid_parts_pass(request in valid_request()) {
        prop_assert!(request.validate().is_ok(), "{:?}", request.validate());
        // And keep their meaning through the serialized form.
        let json = serde_json::to_string(&request).unwrap();
        prop_assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
    }

    #[test]
    fn validation_never_panics(
        prompt in any::<String>(),
        video in any::<String>(),
        images in prop::collection::vec(any::<String>(), 0..12),
        refs in prop::collection::vec(0usize..7, 0..9),
        duration in any::<u32>(),
        task in 0u8..4,
    ) {
        let media = |s: &String| if s.len().is_multiple_of(3) { Media::file(s) } else { Media::url(s.clone()) };
        let elements: Vec<Element> = refs
            .iter()
            .map(|n| (0..*n).fold(Element::new(media(&video)), |e, _| e.reference(media(&video))))
            .collect();
        let request: Request = match task {
            0 => {
                let r = images.iter().fold(EditRequest::new(media(&video), prompt), |r, i| r.image(media(i)));
                elements.into_iter().fold(r, EditRequest::element).into()
            }
            1 => {
                let r = images.iter().fold(ReferRequest::new(media(&video), prompt).duration(duration), |r, i| r.image(media(i)));
                elements.into_iter().fold(r, ReferRequest::element).into()
            }
            2 => {
                let r = AnimateRequest::new(media(&video), prompt).duration(duration);
                match images.first() { Some(last) => r.last(media(last)), None => r }.into()
            }
            _ => {
                let r = images.iter().fold(ComposeRequest::new(prompt).duration(duration), |r, i| r.image(media(i)));
                elements.into_iter().fold(r, ComposeRequest::element).into()
            }
        };
        if let Err(err) = request.validate() {
            prop_assert!(err.is_invalid_request());
            for violation in err.violations() {
                prop_assert!(!violation.field().is_empty());
                prop_assert!(violation.to_string().len() > violation.field().len() + 2);
            }
        }
    }

    #[test]
    fn specs_from_arbitrary_json_never_panic(
        json in r#"\{"task": ?"(edit|refer|animate|compose)"(, ?"(prompt|video|images|elements|duration|aspect_ratio|keep_audio|model|mode)": ?("[^"\\]{0,12}"|[0-9]{1,11}|true|\[("[a-z:/.]{0,10}",?){0,9}\]|\[\{"frontal_image": ?"x", ?"reference_images": ?\[\]\}\])){0,6}\}"#
    ) {
        if let Ok(spec) = serde_json::from_str::<RequestSpec>(&json)
            && let Ok(request) = Request::try_from(spec)
        {
            let _ = request.validate();
        }
    }

    #[test]
    fn references_round_trip_between_syntaxes(
        parts in prop::collection::vec(
            (
                "[^@\\[<\\]>0-9]{0,12}",
                prop::option::of((prop::sample::select(vec![RefKind::Video, RefKind::Image, RefKind::Element]), 1u32..100)),
            ),
            0..8,
        ),
    ) {
        let prompt = Prompt::from_segments(parts.into_iter().flat_map(|(text, reference)| {
            std::iter::once(Segment::Text(text))
                .chain(reference.map(|(kind, index)| Segment::Reference(Reference { kind, index })))
        }));
        let references = |p: &Prompt| p.references().map(|r| r.reference).collect::<Vec<_>>();
        // The `@` form may put a space between a word and a reference, so
        // that the reference is read back; the text is otherwise kept.
        let same = |written: &str, syntax: Syntax| {
            let parsed = Prompt::parse(written);
            if syntax == Syntax::At {
                references(&parsed) == references(&prompt)
            } else {
                parsed == prompt
            }
        };
        for from in [Syntax::At, Syntax::Bracketed, Syntax::Kling] {
            let written = prompt.render(from);
            prop_assert!(same(&written, from), "{:?}: {}", from, written);
            for to in [Syntax::At, Syntax::Bracketed, Syntax::Kling] {
                let converted = Prompt::parse(&written).render(to);
                prop_assert!(same(&converted, if from == Syntax::At { Syntax::At } else { to }), "{:?} to {:?}: {}", from, to, converted);
            }
        }
    }

    #[test]
    fn a_reference_joined_to_a_word_is_text(
        word in "[A-Za-z0-9_é]{1,8}",
        kind in "(Video|Image|Element)",
        digits in "[0-9]{1,30}",
        after in "[ .,a-z]{0,8}",
    ) {
        let source = format!("{word}@{kind}{digits}{after}");
        let prompt = Prompt::parse(&source);
        prop_assert_eq!(prompt.references().count(), 0, "{}", source);
        for syntax in [Syntax::At, Syntax::Bracketed, Syntax::Kling] {
            prop_assert_eq!(prompt.render(syntax), source.clone());
        }
    }

    #[test]
    fn any_number_of_digits_is_one_reference(
        before in "[ .,(]{0,4}",
        kind in prop::sample::select(vec![RefKind::Video, RefKind::Image, RefKind::Element]),
        digits in "[0-9]{1,40}",
        syntax in prop::sample::select(vec![Syntax::At, Syntax::Bracketed, Syntax::Kling]),
    ) {
        let index = digits.parse::<u32>().unwrap_or(u32::MAX);
        let written = Prompt::from_segments([Segment::Reference(Reference { kind, index })])
            .render(syntax);
        // Write the digits as given, whatever their number.
        let source = format!("{before}{}", written.replacen(&index.to_string(), &digits, 1));
        let found: Vec<Reference> = Prompt::parse(&source).references().map(|r| r.reference).collect();
        prop_assert_eq!(found, vec![Reference { kind, index }], "{}", source);
    }

    #[test]
    fn delimited_syntaxes_round_trip_any_text(text in any::<String>()) {
        let prompt = Prompt::parse(&text);
        for syntax in [Syntax::Bracketed, Syntax::Kling] {
            prop_assert_eq!(&Prompt::parse(&prompt.render(syntax)), &prompt, "{:?}", syntax);
        }
        // Text around references is kept as written.
        let rebuilt: String = prompt.segments().iter().map(|s| match s {
            Segment::Text(t) => t.clone(),
            Segment::Reference(r) => r.to_string(),
        }).collect();
        prop_assert_eq!(Prompt::parse(&rebuilt).references().count(), prompt.references().count());
    }
}
