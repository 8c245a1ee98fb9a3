//! Parsing any prompt gives references at positions inside it, and
//! rendering it in any syntax works: never a panic.
//!
//! `cargo +nightly fuzz run prompt`. Its proptest twin runs in CI:
//! `crates/core/tests/properties.rs`.

#![no_main]

use kling_core::prompt::{Prompt, Syntax};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Prompt::parse(text);
    let chars = text.chars().count();
    for located in parsed.references() {
        assert!(located.position < chars, "{text:?}: {located:?}");
    }
    for syntax in [Syntax::At, Syntax::Bracketed, Syntax::Kling] {
        let _ = Prompt::parse(&parsed.render(syntax));
    }
});
