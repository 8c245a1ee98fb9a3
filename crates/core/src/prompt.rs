//! Prompt references: `@Image1`, `[@Image1]` and `<<<image_1>>>`.
//!
//! A prompt names the inputs it talks about ("replace the sky of @Video1 with
//! @Image1"). Providers disagree on the spelling: fal and Oxen.ai write
//! `@Image1`, ShortAPI's examples `[@Image1]`, Kling's own API `<<<image_1>>>`.
//! [`Prompt::parse`] reads all three into text and [`Reference`]s, and
//! [`Prompt::render`] writes them back in the [`Syntax`] a provider expects,
//! so a user writes one prompt and every adapter sends its own form.

use std::fmt::{self, Write as _};

/// The kind of input a prompt reference points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefKind {
    /// The input video (`@Video1`).
    Video,
    /// One of the input images (`@Image2`).
    Image,
    /// One of the elements (`@Element1`).
    Element,
}

impl RefKind {
    const ALL: [RefKind; 3] = [RefKind::Video, RefKind::Image, RefKind::Element];

    /// The word used in the `@` forms: `Video`, `Image`, `Element`.
    fn word(self) -> &'static str {
        match self {
            RefKind::Video => "Video",
            RefKind::Image => "Image",
            RefKind::Element => "Element",
        }
    }

    /// The word used in Kling's `<<<image_1>>>` form.
    fn kling_word(self) -> &'static str {
        match self {
            RefKind::Video => "video",
            RefKind::Image => "image",
            RefKind::Element => "element",
        }
    }
}

impl fmt::Display for RefKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A reference from a prompt to one of the request's inputs, 1-based as
/// written: `@Image2` is `Reference { kind: Image, index: 2 }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// What the reference points at.
    pub kind: RefKind,
    /// The number written after the kind, counting from 1.
    pub index: u32,
}

impl fmt::Display for Reference {
    /// Formats in the canonical `@Image1` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}{}", self.kind, self.index)
    }
}

/// How references are spelled in a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Syntax {
    /// `@Image1`, as fal, Oxen.ai and AI/ML API write it.
    At,
    /// `[@Image1]`, as ShortAPI writes it.
    Bracketed,
    /// `<<<image_1>>>`, as Kling's own API writes it.
    Kling,
}

/// A piece of a parsed prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Plain text, sent as written.
    Text(String),
    /// A reference to an input.
    Reference(Reference),
}

/// A reference together with where it was found in the original prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocatedReference {
    /// The reference.
    pub reference: Reference,
    /// Its position in the prompt as written, counted in characters from 0.
    pub position: usize,
}

/// A prompt split into text and references.
///
/// Two prompts are equal when their segments are, whatever syntax they were
/// written in.
///
/// ```
/// use kling_core::prompt::{Prompt, Syntax};
///
/// let prompt = Prompt::parse("Put [@Element1] in <<<video_1>>> under the sky of @Image2");
/// assert_eq!(
///     prompt.render(Syntax::At),
///     "Put @Element1 in @Video1 under the sky of @Image2"
/// );
/// assert_eq!(
///     prompt.render(Syntax::Bracketed),
///     "Put [@Element1] in [@Video1] under the sky of [@Image2]"
/// );
/// assert_eq!(prompt.references().count(), 3);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Prompt {
    segments: Vec<Segment>,
    /// Character positions of the references in the source text, in order.
    positions: Vec<usize>,
}

impl PartialEq for Prompt {
    fn eq(&self, other: &Self) -> bool {
        self.segments == other.segments
    }
}

impl Eq for Prompt {}

impl Prompt {
    /// Splits `text` into plain text and references, reading the `@Image1`,
    /// `[@Image1]` and `<<<image_1>>>` forms for videos, images and elements.
    ///
    /// The kind word may be in any case (`[@image1]`, as ShortAPI's own
    /// examples write it). Anything that is not a complete reference stays
    /// text: `@Imagine`, `user@example.com` and `<<<image>>>` are not
    /// references. An `@Image1` form starts at a word boundary: after a
    /// letter, digit or `_` it is text (`ann@Video1.com` is an address), unless
    /// that character ends another reference (`@Image1@Image2`). The number
    /// is every digit that follows; one too large for a `u32` is read as
    /// `u32::MAX`, which no request has, so validation refuses it as it
    /// refuses any reference to a missing input. Parsing never fails;
    /// whether each reference points at an input is checked by validation,
    /// which knows the inputs.
    pub fn parse(text: &str) -> Self {
        let mut prompt = Prompt::default();
        let mut text_start = 0;
        let mut chars_before = 0; // characters in text[..i]
        let mut i = 0;
        // Where the last reference ended: a reference may follow it directly.
        let mut reference_end = None;
        while i < text.len() {
            let at_boundary = reference_end == Some(i)
                || !text[..i].chars().next_back().is_some_and(is_word_char);
            if let Some((reference, len)) = match_reference(&text[i..], at_boundary) {
                prompt.push_text(&text[text_start..i]);
                prompt.segments.push(Segment::Reference(reference));
                prompt.positions.push(chars_before);
                chars_before += text[i..i + len].chars().count();
                i += len;
                text_start = i;
                reference_end = Some(i);
            } else {
                // Advance one character; `i` stays on a char boundary.
                let step = text[i..].chars().next().map_or(1, char::len_utf8);
                i += step;
                chars_before += 1;
            }
        }
        prompt.push_text(&text[text_start..]);
        prompt
    }

    /// Builds a prompt from segments, merging adjacent text.
    ///
    /// ```
    /// use kling_core::prompt::{Prompt, RefKind, Reference, Segment, Syntax};
    ///
    /// let prompt = Prompt::from_segments([
    ///     Segment::Text("Make ".into()),
    ///     Segment::Reference(Reference { kind: RefKind::Video, index: 1 }),
    ///     Segment::Text(" snowy".into()),
    /// ]);
    /// assert_eq!(prompt.render(Syntax::Kling), "Make <<<video_1>>> snowy");
    /// ```
    pub fn from_segments(segments: impl IntoIterator<Item = Segment>) -> Self {
        let mut prompt = Prompt::default();
        let mut chars = 0;
        for segment in segments {
            match segment {
                Segment::Text(text) => {
                    chars += text.chars().count();
                    prompt.push_text(&text);
                }
                Segment::Reference(reference) => {
                    prompt.positions.push(chars);
                    chars += reference.to_string().chars().count();
                    prompt.segments.push(Segment::Reference(reference));
                }
            }
        }
        prompt
    }

    fn push_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Segment::Text(last)) = self.segments.last_mut() {
            last.push_str(text);
        } else {
            self.segments.push(Segment::Text(text.to_owned()));
        }
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Every reference with its character position in the source text.
    pub fn references(&self) -> impl Iterator<Item = LocatedReference> + '_ {
        self.segments
            .iter()
            .filter_map(|segment| match segment {
                Segment::Reference(reference) => Some(*reference),
                Segment::Text(_) => None,
            })
            .zip(self.positions.iter().copied())
            .map(|(reference, position)| LocatedReference {
                reference,
                position,
            })
    }

    /// Writes the prompt with every reference in `syntax`.
    ///
    /// In the [`Syntax::At`] form a reference directly followed by a digit
    /// would be read back as a different number (`@Image1` then `2` is
    /// `@Image12`), and one directly after a letter, digit or `_` would be
    /// read back as text (`ann@Video1`), so a space is put between them.
    pub fn render(&self, syntax: Syntax) -> String {
        let mut out = String::new();
        let mut after_at_reference = false;
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => {
                    if after_at_reference && text.starts_with(|c: char| c.is_ascii_digit()) {
                        out.push(' ');
                    }
                    out.push_str(text);
                    after_at_reference = false;
                }
                Segment::Reference(reference) => {
                    let Reference { kind, index } = *reference;
                    if syntax == Syntax::At
                        && !after_at_reference
                        && out.chars().next_back().is_some_and(is_word_char)
                    {
                        out.push(' ');
                    }
                    // Writing to a String cannot fail.
                    let _ = match syntax {
                        Syntax::At => write!(out, "@{}{index}", kind.word()),
                        Syntax::Bracketed => write!(out, "[@{}{index}]", kind.word()),
                        Syntax::Kling => write!(out, "<<<{}_{index}>>>", kind.kling_word()),
                    };
                    after_at_reference = syntax == Syntax::At;
                }
            }
        }
        out
    }
}

/// A character that joins `@` to a word before it (`ann@Video1`): letters,
/// digits and `_`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Matches a reference at the start of `s`, returning it and its length in
/// bytes. The bare `@` form needs `at_boundary`; the bracketed forms are
/// delimited on their own.
fn match_reference(s: &str, at_boundary: bool) -> Option<(Reference, usize)> {
    if let Some(rest) = s.strip_prefix("[@") {
        let (reference, len) = match_word_and_number(rest, RefKind::word, "")?;
        rest[len..]
            .starts_with(']')
            .then_some((reference, 2 + len + 1))
    } else if let Some(rest) = s.strip_prefix('@') {
        if !at_boundary {
            return None;
        }
        let (reference, len) = match_word_and_number(rest, RefKind::word, "")?;
        Some((reference, 1 + len))
    } else if let Some(rest) = s.strip_prefix("<<<") {
        let (reference, len) = match_word_and_number(rest, RefKind::kling_word, "_")?;
        rest[len..]
            .starts_with(">>>")
            .then_some((reference, 3 + len + 3))
    } else {
        None
    }
}

/// Matches `{word}{separator}{digits}` at the start of `s`.
fn match_word_and_number(
    s: &str,
    word: fn(RefKind) -> &'static str,
    separator: &str,
) -> Option<(Reference, usize)> {
    RefKind::ALL.into_iter().find_map(|kind| {
        // Case is not significant: ShortAPI's own examples write `[@image1]`.
        let head = s.get(..word(kind).len())?;
        if !head.eq_ignore_ascii_case(word(kind)) {
            return None;
        }
        let rest = s.get(head.len()..)?.strip_prefix(separator)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Only overflow can fail here: an absurd number stays a reference,
        // to an input no request has.
        let index = rest[..digits].parse().unwrap_or(u32::MAX);
        let len = word(kind).len() + separator.len() + digits;
        Some((Reference { kind, index }, len))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(index: u32) -> Segment {
        Segment::Reference(Reference {
            kind: RefKind::Image,
            index,
        })
    }

    fn text(s: &str) -> Segment {
        Segment::Text(s.to_owned())
    }

    #[test]
    fn reads_each_syntax() {
        for source in ["a @Image2 b", "a [@Image2] b", "a <<<image_2>>> b"] {
            assert_eq!(
                Prompt::parse(source).segments(),
                [text("a "), image(2), text(" b")],
                "{source}"
            );
        }
    }

    #[test]
    fn kind_words_are_read_in_any_case() {
        for source in ["a [@image2] b", "a @IMAGE2 b", "a <<<Image_2>>> b"] {
            assert_eq!(
                Prompt::parse(source).segments(),
                [text("a "), image(2), text(" b")],
                "{source}"
            );
        }
    }

    #[test]
    fn incomplete_forms_stay_text() {
        for source in [
            "@Imagine",
            "user@example.com",
            "<<<image>>>",
            "<<<image_1>>",
            "[@Image]",
            "ann@Video1.com",
            "x_@Image1",
            "é@Element2",
            "@",
            "",
        ] {
            let prompt = Prompt::parse(source);
            assert_eq!(prompt.references().count(), 0, "{source}");
            assert_eq!(prompt.render(Syntax::At), source);
        }
    }

    #[test]
    fn bracket_without_close_reads_the_inner_reference() {
        assert_eq!(
            Prompt::parse("[@Image1 x").segments(),
            [text("["), image(1), text(" x")]
        );
    }

    #[test]
    fn positions_count_characters_of_the_source() {
        let prompt = Prompt::parse("é [@Image1] ü <<<element_3>>>");
        let positions: Vec<_> = prompt.references().map(|r| r.position).collect();
        assert_eq!(positions, [2, 14]);
    }

    #[test]
    fn at_form_starts_at_a_word_boundary() {
        let video = Segment::Reference(Reference {
            kind: RefKind::Video,
            index: 1,
        });
        for (source, expected) in [
            ("@Video1", vec![video.clone()]),
            ("(@Video1)", vec![text("("), video.clone(), text(")")]),
            ("mail ann@Video1.com", vec![text("mail ann@Video1.com")]),
            ("-@Video1", vec![text("-"), video.clone()]),
            ("@Image1@Video1", vec![image(1), video.clone()]),
            (
                "ann[@Video1].com",
                vec![text("ann"), video.clone(), text(".com")],
            ),
        ] {
            assert_eq!(Prompt::parse(source).segments(), expected, "{source}");
        }
        // ShortAPI's bracketed form leaves an address alone.
        assert_eq!(
            Prompt::parse("ann@Video1.com").render(Syntax::Bracketed),
            "ann@Video1.com"
        );
        // A reference after a word is written apart from it, so it is read
        // back as a reference.
        let prompt = Prompt::parse("ann<<<video_1>>>");
        assert_eq!(prompt.render(Syntax::At), "ann @Video1");
        assert_eq!(Prompt::parse("ann @Video1").references().count(), 1);
    }

    #[test]
    fn every_digit_is_the_number_and_overflow_is_the_largest() {
        for (source, index) in [
            ("@Image1234567890", 1_234_567_890),
            ("@Image0001", 1),
            ("@Image4294967295", u32::MAX),
            ("@Image4294967296", u32::MAX),
            ("@Video99999999999999999999", u32::MAX),
            ("[@Element99999999999999999999]", u32::MAX),
            ("<<<image_99999999999999999999>>>", u32::MAX),
        ] {
            let prompt = Prompt::parse(source);
            let found: Vec<u32> = prompt.references().map(|r| r.reference.index).collect();
            assert_eq!(found, [index], "{source}");
            assert!(prompt.segments().len() == 1, "{source}");
        }
    }

    #[test]
    fn at_form_keeps_a_following_digit_apart() {
        let prompt = Prompt::parse("<<<image_1>>>2 cats");
        assert_eq!(prompt.render(Syntax::At), "@Image1 2 cats");
        assert_eq!(prompt.render(Syntax::Bracketed), "[@Image1]2 cats");
    }
}
