//! The sandbox's list of the protocols it speaks: one module each, and one
//! entry here. Adding a provider to the sandbox adds its module and its
//! entry; nothing else in the crate names it.

mod aimlapi;
mod fal;
mod oxen;
mod shortapi;

use std::fmt;
use std::str::FromStr;

use crate::protocol::Protocol;

/// A provider the sandbox emulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// ShortAPI, under `/shortapi`.
    ShortApi,
    /// AI/ML API, under `/aimlapi`.
    AimlApi,
    /// Oxen.ai, under `/oxen`.
    Oxen,
    /// fal.ai, under `/fal`.
    Fal,
}

/// Each provider's protocol, in the order of [`Provider::ALL`].
const PROTOCOLS: &[Protocol] = &[
    shortapi::PROTOCOL,
    aimlapi::PROTOCOL,
    oxen::PROTOCOL,
    fal::PROTOCOL,
];

impl Provider {
    /// Every emulated provider.
    pub const ALL: &'static [Provider] = &[
        Provider::ShortApi,
        Provider::AimlApi,
        Provider::Oxen,
        Provider::Fal,
    ];

    /// The provider's name, also its path prefix: `shortapi`, `aimlapi`, `oxen`, `fal`.
    pub fn as_str(self) -> &'static str {
        self.protocol().name
    }

    /// Where the provider stands in [`Provider::ALL`].
    pub(crate) fn index(self) -> usize {
        Provider::ALL
            .iter()
            .position(|p| *p == self)
            .unwrap_or_default()
    }

    /// How the provider speaks.
    pub(crate) fn protocol(self) -> &'static Protocol {
        &PROTOCOLS[self.index()]
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider name the sandbox does not emulate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {name:?}; the sandbox emulates {known}")]
pub struct UnknownProvider {
    name: String,
    known: String,
}

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProvider {
                name: s.to_owned(),
                known: Provider::ALL
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_its_protocol_under_its_name() {
        assert_eq!(PROTOCOLS.len(), Provider::ALL.len());
        for provider in Provider::ALL {
            assert_eq!(provider.as_str().parse::<Provider>(), Ok(*provider));
        }
        let err = "nowhere".parse::<Provider>().unwrap_err();
        assert!(err.to_string().contains("shortapi, aimlapi, oxen"), "{err}");
    }
}
