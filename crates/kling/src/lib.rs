//! Run Kling's Omni video models (O1, O3) on ShortAPI, AI/ML API, Oxen.ai
//! or fal.ai through one provider-neutral request.
//!
//! A [`Client`] drives any [`Provider`]: it checks a request against every
//! local rule before anything is sent ([`Client::validate`], which makes
//! the [`Checked`] request everything else takes), prices it
//! ([`Client::estimate`]), submits it once ([`Client::submit`]), waits for
//! the job with a polling policy made for jobs that take minutes
//! ([`Client::wait`]), and downloads the result resumably
//! ([`Client::download`]).
//!
//! Each provider adapter is a Cargo feature (`shortapi`, `aimlapi`, `oxen`, `fal`,
//! all on by default), so a program links only the adapters it uses. TLS is `rustls` (default) or
//! `native-tls`.
//!
//! ```no_run
//! use kling::{Client, EditRequest, Media, Request, WaitOptions};
//! use kling::shortapi::ShortApi;
//!
//! # async fn run() -> Result<(), kling::Error> {
//! let client = Client::new(ShortApi::new(std::env::var("SHORTAPI_KEY").unwrap().into())?);
//! let request = Request::from(EditRequest::new(
//!     Media::url("https://example.com/street.mp4"),
//!     "Make it snow on @Video1",
//! ));
//! let checked = client.validate(&request)?; // every rule, before anything is paid
//! println!("about {}", client.estimate(&checked));
//! let job = client.submit(&checked).await?;
//! let done = client.wait(&job, &WaitOptions::default()).await?;
//! client.download(&job, &done, "snowy.mp4".as_ref()).await?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod callback;
mod client;
mod estimate;
mod preflight;
mod providers;
#[cfg(feature = "s3")]
mod s3;
pub mod upload;
pub mod wait;

pub use callback::CallbackReceiver;
pub use client::Client;
pub use estimate::Estimate;
pub use kling_core::provider::{
    self, Capabilities, Found, LostCreate, PreparedCall, Price, Provider,
};
pub use kling_core::{
    AnimateRequest, AspectRatio, Charge, Checked, ComposeRequest, Credits, Delivery, EditRequest,
    Element, Error, JobHandle, JobState, JobStatus, Media, MediaKind, Mode, Model, ReferRequest,
    Request, RequestSpec, Task, UrlFact, Usd, job, money, probe, prompt, rules,
};
/// Reading media URLs over HTTP `Range` requests.
pub use kling_http::probe as url_probe;
pub use kling_http::redacted;
pub use kling_http::{
    ApiClient, ClientSettings, Clock, Descriptor, DownloadError, DownloadOptions, RetryPolicy,
    SecretString, TokioClock,
};
pub use preflight::{Preflight, UrlChecker};
pub use providers::*;
pub use upload::Uploader;
pub use wait::{WaitOptions, WaitPolicy};
