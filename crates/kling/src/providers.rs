//! The one list of providers: one entry per adapter feature. Adding a
//! provider adds its feature to `Cargo.toml`, and here its re-export and
//! its descriptor; nothing else in the workspace names it.

use kling_http::Descriptor;

/// The AI/ML API adapter.
#[cfg(feature = "aimlapi")]
pub use kling_aimlapi as aimlapi;
/// The fal.ai adapter.
#[cfg(feature = "fal")]
pub use kling_fal as fal;
/// The Oxen.ai adapter.
#[cfg(feature = "oxen")]
pub use kling_oxen as oxen;
/// The ShortAPI adapter.
#[cfg(feature = "shortapi")]
pub use kling_shortapi as shortapi;

/// Every provider compiled in, in the order `kling providers` lists them:
/// one entry per enabled adapter feature.
///
/// ```
/// for provider in kling::PROVIDERS {
///     println!("{} ({}): key in {}", provider.title, provider.name(), provider.key_variable);
/// }
/// # #[cfg(feature = "shortapi")]
/// assert!(kling::PROVIDERS.iter().any(|p| p.name() == "shortapi"));
/// ```
pub const PROVIDERS: &[Descriptor] = &[
    #[cfg(feature = "shortapi")]
    kling_shortapi::DESCRIPTOR,
    #[cfg(feature = "aimlapi")]
    kling_aimlapi::DESCRIPTOR,
    #[cfg(feature = "oxen")]
    kling_oxen::DESCRIPTOR,
    #[cfg(feature = "fal")]
    kling_fal::DESCRIPTOR,
];

/// The provider named `name` (as on the command line and in job handles),
/// when it is compiled in.
///
/// ```
/// # #[cfg(feature = "oxen")]
/// assert_eq!(kling::provider_named("oxen").map(|p| p.title), Some("Oxen.ai"));
/// assert!(kling::provider_named("nowhere").is_none());
/// ```
pub fn provider_named(name: &str) -> Option<&'static Descriptor> {
    PROVIDERS.iter().find(|p| p.name() == name)
}
