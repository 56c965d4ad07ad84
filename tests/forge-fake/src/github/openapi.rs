//! The vendored subset of GitHub's OpenAPI description (`data/github-openapi-subset.json`,
//! made by `refresh-openapi.sh`), compiled for checking: operations found by method and path
//! template, parameters, request bodies and the fake's own responses validated with
//! `jsonschema` (OpenAPI 3.0's `nullable` translated to JSON Schema).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use serde_json::{Map, Value};

const SUBSET: &str = include_str!("../../data/github-openapi-subset.json");

/// The compiled subset.
pub(crate) struct Spec {
    /// `@octokit/openapi` version the subset was taken from.
    pub version: String,
    operations: Vec<Operation>,
}

enum Segment {
    Literal(String),
    Param(String),
}

enum Location {
    Path,
    Query,
}

struct Param {
    name: String,
    location: Location,
    required: bool,
    /// The parameter's JSON type (`integer`, `string`, `boolean`), for converting the text.
    kind: String,
    validator: Validator,
}

/// One documented operation.
pub(crate) struct Operation {
    /// GitHub's operation id (`issues/create-comment`).
    pub id: String,
    pub method: String,
    segments: Vec<Segment>,
    params: Vec<Param>,
    /// `(required, validator)` of the JSON request body.
    body: Option<(bool, Validator)>,
    /// The documented success status.
    pub success: u16,
    response: Option<Validator>,
    example: Option<Value>,
}

/// An operation matched to a request path, with the path parameters decoded.
pub(crate) struct Matched<'a> {
    pub op: &'a Operation,
    pub path: BTreeMap<String, String>,
}

impl Spec {
    /// The subset, compiled once per process.
    pub fn get() -> &'static Spec {
        static SPEC: OnceLock<Spec> = OnceLock::new();
        SPEC.get_or_init(|| Spec::compile(SUBSET).expect("the vendored OpenAPI subset compiles"))
    }

    fn compile(text: &str) -> Result<Spec, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let version = doc["info"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let paths = doc["paths"].as_object().ok_or("no paths")?;
        let mut operations = Vec::new();
        for (template, item) in paths {
            let item = item.as_object().ok_or("path item is not an object")?;
            for (method, op) in item {
                operations.push(Operation::compile(template, method, op)?);
            }
        }
        Ok(Spec {
            version,
            operations,
        })
    }

    /// The operation serving `method path` (path without query), preferring the template with
    /// the most literal segments.
    pub fn find(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<(usize, Matched<'_>)> = None;
        for op in self.operations.iter().filter(|op| op.method == method) {
            if op.segments.len() != parts.len() {
                continue;
            }
            let mut params = BTreeMap::new();
            let mut literals = 0;
            let matched = op.segments.iter().zip(&parts).all(|(seg, part)| match seg {
                Segment::Literal(lit) => {
                    literals += 1;
                    lit == part
                }
                Segment::Param(name) => match percent_decode(part) {
                    Some(value) if !value.is_empty() => {
                        params.insert(name.clone(), value);
                        true
                    }
                    _ => false,
                },
            });
            if matched && best.as_ref().is_none_or(|(n, _)| literals > *n) {
                best = Some((literals, Matched { op, path: params }));
            }
        }
        best.map(|(_, m)| m)
    }
}

impl Operation {
    fn compile(template: &str, method: &str, op: &Value) -> Result<Operation, String> {
        let segments = template
            .trim_start_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        let mut params = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let location = match p["in"].as_str() {
                Some("path") => Location::Path,
                Some("query") => Location::Query,
                _ => continue,
            };
            let schema = p.get("schema").cloned().unwrap_or(Value::Bool(true));
            params.push(Param {
                name: p["name"]
                    .as_str()
                    .ok_or("parameter without name")?
                    .to_owned(),
                location,
                required: p["required"].as_bool().unwrap_or(false),
                kind: schema["type"].as_str().unwrap_or("string").to_owned(),
                validator: validator(&schema)?,
            });
        }
        let body = match op.get("requestBody") {
            Some(rb) => {
                let schema = &rb["content"]["application/json"]["schema"];
                Some((
                    rb["required"].as_bool().unwrap_or(false),
                    validator(schema)?,
                ))
            }
            None => None,
        };
        let responses = op["responses"].as_object().ok_or("no responses")?;
        let (code, response) = responses
            .iter()
            .find(|(code, _)| code.starts_with('2'))
            .ok_or_else(|| format!("{method} {template}: no success response"))?;
        let content = &response["content"]["application/json"];
        let example = content["examples"]
            .as_object()
            .and_then(|examples| examples.values().next())
            .map(|example| example["value"].clone());
        Ok(Operation {
            id: op["operationId"].as_str().unwrap_or_default().to_owned(),
            method: method.to_uppercase(),
            segments,
            params,
            body,
            success: code.parse().map_err(|_| format!("bad status {code}"))?,
            response: match content.get("schema") {
                Some(schema) => Some(validator(schema)?),
                None => None,
            },
            example,
        })
    }

    /// The documented example of the success response (the first, when there are several).
    pub fn example(&self) -> Value {
        self.example.clone().unwrap_or(Value::Null)
    }

    /// Problems with the path parameters (`in_path == true`) or the query string; each names
    /// the parameter.
    pub fn check_params(
        &self,
        path: &BTreeMap<String, String>,
        query: &[(String, String)],
    ) -> (Vec<String>, Vec<String>) {
        let mut path_problems = Vec::new();
        let mut query_problems = Vec::new();
        for param in &self.params {
            let (value, problems) = match param.location {
                Location::Path => (path.get(&param.name), &mut path_problems),
                Location::Query => (
                    query.iter().find(|(k, _)| *k == param.name).map(|(_, v)| v),
                    &mut query_problems,
                ),
            };
            let Some(value) = value else {
                if param.required {
                    problems.push(format!("missing required parameter `{}`", param.name));
                }
                continue;
            };
            let typed = match param.kind.as_str() {
                "integer" => match value.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        problems.push(format!(
                            "parameter `{}`={value:?} is not an integer",
                            param.name
                        ));
                        continue;
                    }
                },
                "boolean" => match value.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => {
                        problems.push(format!(
                            "parameter `{}`={value:?} is not a boolean",
                            param.name
                        ));
                        continue;
                    }
                },
                _ => Value::String(value.clone()),
            };
            for error in param.validator.iter_errors(&typed) {
                problems.push(format!("parameter `{}`: {error}", param.name));
            }
        }
        for (key, _) in query {
            if !self
                .params
                .iter()
                .any(|p| matches!(p.location, Location::Query) && p.name == *key)
            {
                query_problems.push(format!("undocumented query parameter `{key}`"));
            }
            if query.iter().filter(|(k, _)| k == key).count() > 1 {
                query_problems.push(format!("query parameter `{key}` given more than once"));
            }
        }
        query_problems.dedup();
        (path_problems, query_problems)
    }

    /// Problems with the JSON request body (`None`: no body was sent).
    pub fn check_body(&self, body: Option<&Value>) -> Vec<String> {
        match (&self.body, body) {
            (None, None) => Vec::new(),
            (None, Some(_)) => vec!["a body was sent to an operation that takes none".to_owned()],
            (Some((true, _)), None) => vec!["the required request body is missing".to_owned()],
            (Some((false, _)), None) => Vec::new(),
            (Some((_, validator)), Some(body)) => validator
                .iter_errors(body)
                .map(|e| format!("request body at `{}`: {e}", e.instance_path()))
                .collect(),
        }
    }

    /// Problems with a success response body the fake is about to send.
    pub fn check_response(&self, body: &Value) -> Vec<String> {
        match &self.response {
            Some(validator) => validator
                .iter_errors(body)
                .map(|e| format!("response body at `{}`: {e}", e.instance_path()))
                .collect(),
            None => Vec::new(),
        }
    }
}

/// Compiles an OpenAPI 3.0 schema object as JSON Schema.
fn validator(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(Draft::Draft4)
        .build(&to_json_schema(schema))
        .map_err(|e| format!("schema does not compile: {e}"))
}

/// Translates an OpenAPI 3.0 schema object to JSON Schema (draft 4): `nullable: true` becomes
/// a `null` alternative; `example`s and extensions are dropped. Walks only schema positions,
/// so a property *named* `nullable` is left alone.
pub(crate) fn to_json_schema(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        let translated = match key.as_str() {
            "nullable" | "example" | "examples" | "deprecated" | "readOnly" | "writeOnly"
            | "discriminator" | "xml" => continue,
            k if k.starts_with("x-") => continue,
            "properties" | "patternProperties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), to_json_schema(s)))
                    .collect(),
            ),
            "items" | "additionalProperties" | "not" => to_json_schema(value),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(to_json_schema)
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(key.clone(), translated);
    }
    if obj.get("nullable").and_then(Value::as_bool) != Some(true) {
        return Value::Object(out);
    }
    match out.get("type").cloned() {
        Some(Value::String(t)) if !out.contains_key("oneOf") && !out.contains_key("anyOf") => {
            out.insert(
                "type".into(),
                Value::Array(vec![Value::String(t), "null".into()]),
            );
            if let Some(Value::Array(values)) = out.get_mut("enum")
                && !values.contains(&Value::Null)
            {
                values.push(Value::Null);
            }
            Value::Object(out)
        }
        _ => serde_json::json!({ "anyOf": [Value::Object(out), { "type": "null" }] }),
    }
}

/// Decodes `%XX` escapes of a path segment (`+` stays a plus, as in paths); `None` for bad
/// escapes or invalid UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    if bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit())
    }) {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_compiles_with_every_operation_the_client_uses() {
        let spec = Spec::get();
        assert!(!spec.version.is_empty());
        for (method, path, id) in [
            (
                "POST",
                "/app/installations/7/access_tokens",
                "apps/create-installation-access-token",
            ),
            ("GET", "/repos/o/r/pulls", "pulls/list"),
            ("GET", "/repos/o/r/pulls/3", "pulls/get"),
            (
                "GET",
                "/repos/o/r/issues/3/comments",
                "issues/list-comments",
            ),
            (
                "PATCH",
                "/repos/o/r/issues/comments/3",
                "issues/update-comment",
            ),
            (
                "DELETE",
                "/repos/o/r/issues/3/labels/a%3A%20b",
                "issues/remove-label",
            ),
            (
                "GET",
                "/repos/o/r/collaborators/u/permission",
                "repos/get-collaborator-permission-level",
            ),
        ] {
            let m = spec
                .find(method, path)
                .unwrap_or_else(|| panic!("{method} {path}"));
            assert_eq!(m.op.id, id);
        }
        let m = spec
            .find("DELETE", "/repos/o/r/issues/3/labels/a%3A%20b")
            .expect("found");
        assert_eq!(m.path["name"], "a: b");
        assert!(spec.find("GET", "/repos/o/r/branches").is_none());
    }

    #[test]
    fn nullable_becomes_a_null_alternative() {
        assert_eq!(
            to_json_schema(&json!({"type": "string", "nullable": true, "enum": ["a"]})),
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
        assert_eq!(
            to_json_schema(&json!({"nullable": true, "oneOf": [{"type": "string"}]})),
            json!({"anyOf": [{"oneOf": [{"type": "string"}]}, {"type": "null"}]})
        );
        // A property called `nullable` is a property, not the keyword.
        assert_eq!(
            to_json_schema(&json!({"properties": {"nullable": {"type": "boolean"}}})),
            json!({"properties": {"nullable": {"type": "boolean"}}})
        );
    }

    #[test]
    fn bodies_and_parameters_are_checked() {
        let spec = Spec::get();
        let create = spec
            .find("POST", "/repos/o/r/issues/1/comments")
            .expect("op")
            .op;
        assert!(create.check_body(Some(&json!({"body": "hi"}))).is_empty());
        assert!(!create.check_body(Some(&json!({"text": "hi"}))).is_empty());
        assert!(!create.check_body(None).is_empty());
        let list = spec.find("GET", "/repos/o/r/pulls").expect("op");
        let q = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(
            list.op
                .check_params(&list.path, &q("state", "open"))
                .1
                .is_empty()
        );
        assert!(
            !list
                .op
                .check_params(&list.path, &q("state", "merged"))
                .1
                .is_empty()
        );
        assert!(
            !list
                .op
                .check_params(&list.path, &q("per_page", "ten"))
                .1
                .is_empty()
        );
        assert!(
            !list
                .op
                .check_params(&list.path, &q("colour", "red"))
                .1
                .is_empty()
        );
    }
}
