//! What differs between the schema of a body we send and the schema a
//! provider publishes for it.
//!
//! The walk follows both schemas from the root through `properties` and
//! `items`, resolving `$ref`s and `Option`'s `anyOf [T, null]`. At each
//! level it reports: a field published as required that we cannot send or
//! may leave out; a field we send that is not published; a type, an enum or
//! a numeric limit the provider publishes that ours does not match; a
//! published default on a field we may leave out, where ours says
//! otherwise. `null` is ignored on both sides: we never send it.
//!
//! What we declare and the provider does not (an enum on a free string, a
//! limit the provider leaves open) is our own stricter check, not drift.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Value, json};

/// What kind of difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Published as required; we cannot send it, or may leave it out.
    Required,
    /// We send it; it is not published.
    NotPublished,
    /// The JSON types differ.
    Type,
    /// The allowed values differ.
    Enum,
    /// A numeric limit differs.
    Limit(&'static str),
    /// We may leave the field out and so rely on a default that differs.
    Default,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Required => f.write_str("required"),
            Kind::NotPublished => f.write_str("not-published"),
            Kind::Type => f.write_str("type"),
            Kind::Enum => f.write_str("enum"),
            Kind::Limit(keyword) => write!(f, "limit:{keyword}"),
            Kind::Default => f.write_str("default"),
        }
    }
}

/// One difference, as one line of `cargo xtask check`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Finding {
    pub(crate) provider: String,
    pub(crate) model: String,
    /// Where: `$.args.duration`, `$.elements[].frontal_image_url`.
    pub(crate) path: String,
    pub(crate) kind: Kind,
    pub(crate) ours: String,
    pub(crate) published: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}: we have {}, published {}",
            self.provider, self.model, self.path, self.kind, self.ours, self.published
        )
    }
}

/// A schema and the document its `$ref`s point into.
#[derive(Clone, Copy)]
pub(crate) struct Side<'a> {
    pub(crate) root: &'a Value,
    pub(crate) node: &'a Value,
}

impl<'a> Side<'a> {
    pub(crate) fn new(root: &'a Value) -> Self {
        Side { root, node: root }
    }

    fn at(self, node: &'a Value) -> Self {
        Side {
            root: self.root,
            node,
        }
        .resolved()
    }

    /// Follows `$ref`, a lone `allOf`, and `anyOf`/`oneOf` of one schema
    /// and `null` (an `Option`).
    fn resolved(self) -> Self {
        let mut node = self.node;
        for _ in 0..32 {
            if let Some(target) = node
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|pointer| self.root.pointer(pointer))
            {
                node = target;
                continue;
            }
            // Only a node that is nothing but its alternatives stands for
            // them: an `allOf` of conditions beside `properties` does not.
            let bare = node.get("properties").is_none() && node.get("type").is_none();
            let alternatives = ["anyOf", "oneOf", "allOf"]
                .iter()
                .filter(|_| bare)
                .find_map(|key| node.get(*key).and_then(Value::as_array));
            if let Some(list) = alternatives {
                let real: Vec<&Value> = list.iter().filter(|v| !is_null_type(v)).collect();
                if let [only] = real[..]
                    && values(only).is_none()
                {
                    node = only;
                    continue;
                }
            }
            break;
        }
        Side {
            root: self.root,
            node,
        }
    }

    fn properties(self) -> Option<&'a serde_json::Map<String, Value>> {
        self.node.get("properties").and_then(Value::as_object)
    }

    fn required(self) -> BTreeSet<&'a str> {
        self.node
            .get("required")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

fn is_null_type(node: &Value) -> bool {
    node.get("type") == Some(&json!("null"))
}

/// The JSON types a schema allows, without `null`; `None` when it says
/// nothing about types.
fn types(node: &Value) -> Option<BTreeSet<String>> {
    let mut set: BTreeSet<String> = match node.get("type")? {
        Value::String(one) => std::iter::once(one.clone()).collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return None,
    };
    set.remove("null");
    Some(set)
}

/// The values a schema allows, when it lists them (`const`, `enum`, or
/// alternatives that each list theirs), without `null`.
fn values(node: &Value) -> Option<BTreeSet<String>> {
    if let Some(one) = node.get("const") {
        return Some(std::iter::once(one.to_string()).collect());
    }
    if let Some(list) = node.get("enum").and_then(Value::as_array) {
        return Some(
            list.iter()
                .filter(|v| !v.is_null())
                .map(Value::to_string)
                .collect(),
        );
    }
    let list = ["oneOf", "anyOf"]
        .iter()
        .find_map(|key| node.get(*key).and_then(Value::as_array))?;
    let mut all = BTreeSet::new();
    for alternative in list.iter().filter(|v| !is_null_type(v)) {
        all.extend(values(alternative)?);
    }
    Some(all)
}

fn show(set: &BTreeSet<String>) -> String {
    format!("[{}]", set.iter().cloned().collect::<Vec<_>>().join(", "))
}

const LIMITS: &[&str] = &[
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
];

/// Whether we may leave out a field the provider reports missing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extra {
    /// Every field we send must be published.
    Refused,
    /// The published schema is a shared envelope the model's own fields are
    /// merged into (Oxen's queue): fields it does not list are fine.
    Allowed,
}

/// Every difference between `ours` and `published`, walking from `path`.
pub(crate) fn compare(
    provider: &str,
    model: &str,
    ours: Side<'_>,
    published: Side<'_>,
    extra: Extra,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut report = |path: &str, kind, ours: String, published: String| {
        findings.push(Finding {
            provider: provider.to_owned(),
            model: model.to_owned(),
            path: path.to_owned(),
            kind,
            ours,
            published,
        });
    };
    walk(
        "$",
        ours.resolved(),
        published.resolved(),
        extra,
        &mut report,
    );
    findings.sort();
    findings
}

type Report<'r> = &'r mut dyn FnMut(&str, Kind, String, String);

fn walk(path: &str, ours: Side<'_>, published: Side<'_>, extra: Extra, report: Report<'_>) {
    compare_values(path, ours.node, published.node, report);
    if published.properties().is_some() {
        compare_fields(path, ours, published, extra, report);
    }
    let (o, p) = (ours.node, published.node);
    if let (Some(ours_items), Some(published_items)) = (o.get("items"), p.get("items"))
        && ours_items.is_object()
        && published_items.is_object()
    {
        walk(
            &format!("{path}[]"),
            ours.at(ours_items),
            published.at(published_items),
            extra,
            report,
        );
    }
}

/// Types, allowed values and numeric limits at one node.
fn compare_values(path: &str, o: &Value, p: &Value, report: Report<'_>) {
    if let (Some(ours_types), Some(published_types)) = (types(o), types(p)) {
        let integer_as_number = ours_types.len() == 1
            && ours_types.contains("integer")
            && published_types.contains("number");
        if ours_types != published_types && !integer_as_number {
            report(path, Kind::Type, show(&ours_types), show(&published_types));
        }
    }
    if let Some(published_values) = values(p) {
        match values(o) {
            Some(ours_values) if ours_values == published_values => {}
            Some(ours_values) => report(
                path,
                Kind::Enum,
                show(&ours_values),
                show(&published_values),
            ),
            None => report(
                path,
                Kind::Enum,
                "any value".to_owned(),
                show(&published_values),
            ),
        }
    }
    for keyword in LIMITS {
        let Some(limit) = p.get(*keyword) else {
            continue;
        };
        let same = o
            .get(*keyword)
            .and_then(Value::as_f64)
            .zip(limit.as_f64())
            .is_some_and(|(a, b)| (a - b).abs() < f64::EPSILON);
        if !same {
            let ours = o.get(*keyword).map_or("none".to_owned(), Value::to_string);
            report(path, Kind::Limit(keyword), ours, limit.to_string());
        }
    }
}

/// The fields of an object: required ones, unpublished ones, defaults we
/// rely on, and each common field in turn.
fn compare_fields(
    path: &str,
    ours: Side<'_>,
    published: Side<'_>,
    extra: Extra,
    report: Report<'_>,
) {
    let published_fields = published.properties().cloned().unwrap_or_default();
    let ours_fields = ours.properties().cloned().unwrap_or_default();
    let ours_required = ours.required();
    for name in published.required() {
        let field = format!("{path}.{name}");
        if !ours_fields.contains_key(name) {
            report(
                &field,
                Kind::Required,
                "no such field".to_owned(),
                "required".to_owned(),
            );
        } else if !ours_required.contains(name) {
            report(
                &field,
                Kind::Required,
                "optional".to_owned(),
                "required".to_owned(),
            );
        }
    }
    for (name, ours_field) in &ours_fields {
        let field = format!("{path}.{name}");
        let Some(published_field) = published_fields.get(name) else {
            if extra == Extra::Refused {
                report(
                    &field,
                    Kind::NotPublished,
                    "a field we send".to_owned(),
                    "no such field".to_owned(),
                );
            }
            continue;
        };
        let ours_field = ours.at(ours_field);
        let published_field = published.at(published_field);
        if let Some(default) = published_field.node.get("default")
            && !ours_required.contains(name.as_str())
            && ours_field.node.get("default") != Some(default)
        {
            let ours = ours_field
                .node
                .get("default")
                .map_or("left out, no default".to_owned(), |d| {
                    format!("default {d}")
                });
            report(&field, Kind::Default, ours, format!("default {default}"));
        }
        walk(&field, ours_field, published_field, extra, report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(ours: &Value, published: &Value) -> Vec<String> {
        compare(
            "p",
            "m",
            Side::new(ours),
            Side::new(published),
            Extra::Refused,
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn refs_and_options_are_followed() {
        let ours = json!({
            "type": "object",
            "properties": {
                "ratio": {"anyOf": [{"$ref": "#/$defs/Ratio"}, {"type": "null"}]},
                "seconds": {"type": ["integer", "null"], "minimum": 3},
            },
            "$defs": {"Ratio": {"oneOf": [{"const": "16:9"}, {"const": "1:1"}]}},
        });
        let mut published = json!({
            "type": "object",
            "properties": {
                "ratio": {"type": "string", "enum": ["1:1", "16:9"]},
                "seconds": {"type": "integer", "minimum": 3},
            },
            "allOf": [{"if": {"required": ["ratio"]}, "then": {"required": ["seconds"]}}],
        });
        assert_eq!(findings(&ours, &published), Vec::<String>::new());
        // The conditions beside the properties do not hide them.
        published["properties"]["seconds"]["minimum"] = json!(5);
        assert_eq!(
            findings(&ours, &published),
            ["p m $.seconds: limit:minimum: we have 3, published 5"]
        );
    }

    #[test]
    fn each_kind_of_drift_is_one_line() {
        let ours = json!({
            "type": "object",
            "properties": {
                "prompt": {"type": "string"},
                "n": {"type": "integer", "maximum": 10},
                "extra": {"type": "boolean"},
                "audio": {"type": "boolean"},
            },
            "required": ["prompt", "n"],
        });
        let published = json!({
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "maxLength": 2500},
                "n": {"type": "string", "enum": ["1", "2"]},
                "audio": {"type": "boolean", "default": true},
                "seed": {"type": "integer"},
            },
            "required": ["prompt", "seed", "audio"],
        });
        assert_eq!(
            findings(&ours, &published),
            [
                "p m $.audio: required: we have optional, published required",
                "p m $.audio: default: we have left out, no default, published default true",
                "p m $.extra: not-published: we have a field we send, published no such field",
                "p m $.n: type: we have [integer], published [string]",
                "p m $.n: enum: we have any value, published [\"1\", \"2\"]",
                "p m $.prompt: limit:maxLength: we have none, published 2500",
                "p m $.seed: required: we have no such field, published required",
            ]
        );
    }
}
