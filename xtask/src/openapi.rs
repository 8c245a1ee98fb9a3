//! The providers' original OpenAPI documents: the request body schemas in
//! them, for `cargo xtask check --against DIR`.
//!
//! AI/ML API publishes one document per model, its body under
//! `POST /v2/video/generations`; Oxen publishes one hub document whose
//! `POST /api/ai/queue` body is the envelope every model's parameters are
//! merged into.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::compare::Extra;
use crate::schemas::{Published, model_of};

/// Every `.json` file under `dir`, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Follows `$ref`s into the same document (OpenAPI `components`).
fn inline_refs(root: &Value, node: &Value, depth: usize) -> Value {
    if depth > 32 {
        return node.clone();
    }
    match node {
        Value::Object(object) => {
            if let Some(target) = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|pointer| root.pointer(pointer))
            {
                return inline_refs(root, target, depth + 1);
            }
            Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), inline_refs(root, v, depth + 1)))
                    .collect(),
            )
        }
        Value::Array(list) => Value::Array(
            list.iter()
                .map(|v| inline_refs(root, v, depth + 1))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema's `null` type.
fn nullable_as_type(node: &mut Value) {
    match node {
        Value::Object(object) => {
            if object.remove("nullable") == Some(Value::Bool(true))
                && let Some(Value::String(one)) = object.get("type").cloned()
            {
                object.insert("type".to_owned(), serde_json::json!([one, "null"]));
            }
            object.values_mut().for_each(nullable_as_type);
        }
        Value::Array(list) => list.iter_mut().for_each(nullable_as_type),
        _ => {}
    }
}

/// The create bodies described by the OpenAPI documents under `dir`, and
/// lines for documents that hold none.
pub(crate) fn read(dir: &Path) -> (Vec<Published>, Vec<String>) {
    let mut found = Vec::new();
    let mut ignored = Vec::new();
    for path in json_files(dir) {
        let source = path.display().to_string();
        let Some(document) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        else {
            ignored.push(format!("{source}: not JSON; skipped"));
            continue;
        };
        // Where each provider's create body sits in its OpenAPI documents.
        let body = kling::PROVIDERS.iter().find_map(|provider| {
            let paths = document.get("paths")?;
            let schema = paths
                .get(provider.openapi_create_path?)?
                .pointer("/post/requestBody/content/application~1json/schema")?;
            Some((provider.name(), schema))
        });
        let Some((provider, schema)) = body else {
            ignored.push(format!(
                "{source}: no create body of a known provider; skipped"
            ));
            continue;
        };
        let mut schema = inline_refs(&document, schema, 0);
        nullable_as_type(&mut schema);
        let (model, extra) = match model_of(&schema) {
            Some(model) => (model, Extra::Refused),
            None => ("(every model)".to_owned(), Extra::Allowed),
        };
        found.push(Published {
            provider: provider.to_owned(),
            model,
            source,
            schema,
            extra,
        });
    }
    (found, ignored)
}
