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

/// A published schema this package carries, by its path under
/// `schemas/published/`: what a protocol module lists its models with.
macro_rules! published {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/published/",
            $file
        ))
    };
}
pub(crate) use published;

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
        Provider::ALL
            .iter()
            .flat_map(|provider| {
                provider
                    .protocol()
                    .schemas
                    .iter()
                    .map(|(model, source)| ModelSchema {
                        provider: *provider,
                        model,
                        validator: compile(source),
                    })
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

/// Every way `body` breaks the envelope `provider` merges every model's
/// parameters into, for a provider that has one.
pub(crate) fn check_envelope(provider: Provider, body: &Value) -> Vec<String> {
    static ENVELOPES: OnceLock<Vec<Option<Validator>>> = OnceLock::new();
    let envelopes = ENVELOPES.get_or_init(|| {
        Provider::ALL
            .iter()
            .map(|p| p.protocol().envelope.map(compile))
            .collect()
    });
    match &envelopes[provider.index()] {
        Some(envelope) => errors(envelope, body),
        None => Vec::new(),
    }
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
        for provider in Provider::ALL {
            for (model, _) in provider.protocol().schemas {
                assert!(model_found(*provider, model), "{model}");
            }
            // Every envelope compiles, and a minimal body fits it.
            let minimal = serde_json::json!({"model": "m", "prompt": "p"});
            assert!(check_envelope(*provider, &minimal).is_empty(), "{provider}");
        }
    }

    fn model_found(provider: Provider, name: &str) -> bool {
        model(provider, name).is_some_and(|m| m.model == name)
    }
}
