//! Provider-neutral requests, validation rules and job types for Kling's
//! Omni video models (O1, O3).
//!
//! This crate is the base of kling-rs. It knows no provider and does no
//! network I/O: it describes what a user asks for ([`Request`]), checks it
//! against every rule that can be checked locally ([`Request::validate`]),
//! and defines the [`Provider`](provider::Provider) trait that each adapter
//! crate implements.
//!
//! ```
//! use kling_core::{EditRequest, Media, Request};
//!
//! let request = Request::from(
//!     EditRequest::new(Media::url("https://example.com/street.mp4"), "Make it snow on @Video1")
//!         .image(Media::url("https://example.com/snow.jpg")),
//! );
//! request.validate()?;
//! # Ok::<(), kling_core::Error>(())
//! ```
#![deny(missing_docs)]

pub mod checked;
mod counters;
pub mod error;
pub mod job;
pub mod media;
pub mod money;
pub mod probe;
pub mod prompt;
pub mod provider;
pub mod request;
pub mod rules;

pub use checked::{Checked, CheckedInput, UrlFact};
pub use error::{BoxError, Delivery, Error};
pub use job::{JobHandle, JobState, JobStatus, ParseJobHandleError};
pub use media::{Media, MediaKind};
pub use money::{Charge, Credits, ParseCreditsError, ParseUsdError, Usd};
pub use provider::{Found, LostCreate};
pub use request::{
    AnimateRequest, AspectRatio, ComposeRequest, EditRequest, Element, MediaField, Mode, Model,
    ReferRequest, Request, RequestSpec, Task, UnknownName, WireElement, WireMedia,
};

/// `bytes` as lowercase hex, two digits a byte: how digests, signatures
/// and tokens are written.
///
/// ```
/// assert_eq!(kling_core::lower_hex(&[0x00, 0x0f, 0xab]), "000fab");
/// ```
pub fn lower_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

// The README's examples compile and pass as doctests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
