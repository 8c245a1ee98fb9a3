//! The published schemas, compiled once, that every create body is checked
//! against.
//!
//! They are the transcriptions in the workspace's `schemas/published/`,
//! embedded at build time from the copy this package carries
//! (`crates/sandbox/schemas/published/`, kept byte-identical by `cargo xtask
//! schemas` and checked by `cargo xtask check`): the sandbox never looks at
//! the adapters' own types, so it catches the adapters' mistakes instead of
//! agreeing with them.

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

use crate::Provider;

/// A model the sandbox emulates, with the schema of its create body.
pub(crate) struct ModelSchema {
    pub(crate) provider: Provider,
    pub(crate) model: &'static str,
    validator: Validator,
}

macro_rules! published {
    ($provider:ident, $model:literal, $file:literal) => {
        (
            Provider::$provider,
            $model,
            include_str!(concat!("../schemas/published/", $file)),
        )
    };
}

const SOURCES: &[(Provider, &str, &str)] = &[
    published!(
        ShortApi,
        "kwaivgi/kling-o1/video-to-video",
        "shortapi/kling-o1-video-to-video.json"
    ),
    published!(
        ShortApi,
        "kwaivgi/kling-o3/video-to-video",
        "shortapi/kling-o3-video-to-video.json"
    ),
    published!(
        ShortApi,
        "kwaivgi/kling-o1/image-to-video",
        "shortapi/kling-o1-image-to-video.json"
    ),
    published!(
        AimlApi,
        "klingai/video-o1-video-to-video-edit",
        "aimlapi/video-o1-video-to-video-edit.json"
    ),
    published!(
        AimlApi,
        "klingai/video-o1-video-to-video-reference",
        "aimlapi/video-o1-video-to-video-reference.json"
    ),
    published!(
        AimlApi,
        "klingai/video-o1-reference-to-video",
        "aimlapi/video-o1-reference-to-video.json"
    ),
    published!(
        AimlApi,
        "klingai/video-o1-image-to-video",
        "aimlapi/video-o1-image-to-video.json"
    ),
    published!(
        Oxen,
        "kling-video-o1-video-to-video-edit",
        "oxen/kling-video-o1-video-to-video-edit.json"
    ),
    published!(
        Oxen,
        "kling-video-o1-image-to-video",
        "oxen/kling-video-o1-image-to-video.json"
    ),
    published!(
        Oxen,
        "kling-video-o1-reference-to-video",
        "oxen/kling-video-o1-reference-to-video.json"
    ),
    published!(Oxen, "kling-video-o3-omni", "oxen/kling-video-o3-omni.json"),
];

/// Oxen's envelope: the fields every queued job takes.
const OXEN_QUEUE: &str = include_str!("../schemas/published/oxen/queue-create.json");

fn compile(source: &str) -> Validator {
    let schema: Value = serde_json::from_str(source).expect("a published schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a published schema compiles")
}

fn all() -> &'static [ModelSchema] {
    static ALL: OnceLock<Vec<ModelSchema>> = OnceLock::new();
    ALL.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(provider, model, source)| ModelSchema {
                provider: *provider,
                model,
                validator: compile(source),
            })
            .collect()
    })
}

/// The model `name` of `provider`, if the sandbox emulates it.
pub(crate) fn model(provider: Provider, name: &str) -> Option<&'static ModelSchema> {
    all()
        .iter()
        .find(|m| m.provider == provider && m.model == name)
}

/// The models the sandbox emulates for `provider`.
pub(crate) fn models(provider: Provider) -> Vec<&'static str> {
    all()
        .iter()
        .filter(|m| m.provider == provider)
        .map(|m| m.model)
        .collect()
}

impl ModelSchema {
    /// Every way `body` breaks the schema, as `PATH: message` lines.
    pub(crate) fn check(&self, body: &Value) -> Vec<String> {
        errors(&self.validator, body)
    }
}

/// Every way `body` breaks Oxen's queue envelope.
pub(crate) fn check_oxen_envelope(body: &Value) -> Vec<String> {
    static ENVELOPE: OnceLock<Validator> = OnceLock::new();
    errors(ENVELOPE.get_or_init(|| compile(OXEN_QUEUE)), body)
}

fn errors(validator: &Validator, body: &Value) -> Vec<String> {
    validator
        .iter_errors(body)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            format!("{path}: {e}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_is_found_by_its_model() {
        for (provider, model, _) in SOURCES {
            assert!(model_found(*provider, model), "{model}");
        }
        assert!(check_oxen_envelope(&serde_json::json!({"model": "m", "prompt": "p"})).is_empty());
    }

    fn model_found(provider: Provider, name: &str) -> bool {
        model(provider, name).is_some_and(|m| m.model == name)
    }
}
