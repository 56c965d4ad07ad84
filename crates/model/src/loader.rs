//! The one module that reads manifest files: path rules, size and encoding checks, YAML,
//! schema validation with every error mapped back to file:line:column, then typed documents.

use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::manifest::{API_VERSION, FleetDoc, NodeDoc, RoleDoc, type_key_of};
use crate::schema::{Checker, checkers};
use crate::snapshot::Snapshot;
use crate::yaml::{self, Pos, YamlError};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use state::parallel::in_parallel;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest manifest file read, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A typed document with where it came from, so later checks can point into it.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub doc: T,
    pub file: String,
    pub tree: yaml::Node,
}

impl<T> Located<T> {
    /// Position of the value at a JSON pointer inside this document (the key if there is one).
    pub fn pos(&self, pointer: &str) -> Pos {
        let (value, key) = self.tree.locate(pointer);
        key.unwrap_or(value)
    }

    /// Position of the value itself (not its key).
    pub fn value_pos(&self, pointer: &str) -> Pos {
        self.tree.locate(pointer).0
    }
}

/// Every document of a snapshot, sorted by kind. Documents are shared (`Arc`): a file with
/// the same path and bytes in two revisions is loaded once (see [`load_reusing`]), and the
/// compiler tells unchanged documents apart by pointer.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub fleets: Vec<Arc<Located<FleetDoc>>>,
    pub nodes: Vec<Arc<Located<NodeDoc>>>,
    pub roles: Vec<Arc<Located<RoleDoc>>>,
    /// Resources declared in role documents that were rejected: they exist in the user's
    /// intent, so references to them are not reported as unknown a second time.
    pub rejected: std::collections::HashSet<state::ResourceId>,
}

/// What one file yields: a pure function of its path and bytes.
#[derive(Debug, Default)]
struct FileLoad {
    fleets: Vec<Arc<Located<FleetDoc>>>,
    nodes: Vec<Arc<Located<NodeDoc>>>,
    roles: Vec<Arc<Located<RoleDoc>>>,
    rejected: Vec<state::ResourceId>,
    diags: Vec<Diagnostic>,
}

/// Every file's load result, by path, with the bytes it came from: what a later load of
/// another revision reuses for files whose bytes are the same.
#[derive(Debug, Default)]
pub struct Loads {
    files: BTreeMap<String, (Arc<[u8]>, Arc<FileLoad>)>,
}

/// Whether `path` holds manifests: `centossrv.yaml` and YAML under `nodes/` and `roles/`.
pub fn is_manifest_path(path: &str) -> bool {
    let yaml = path.ends_with(".yaml") || path.ends_with(".yml");
    yaml && (path == "centossrv.yaml"
        || path == "centossrv.yml"
        || path.starts_with("nodes/")
        || path.starts_with("roles/"))
}

fn is_stray_yaml(path: &str) -> bool {
    let yaml = path.ends_with(".yaml") || path.ends_with(".yml");
    yaml && !is_manifest_path(path)
        && path != crate::access::FILE
        && !path.starts_with("files/")
        && !path.split('/').any(|c| c.starts_with('.'))
        && !path.contains('/')
}

/// Reads every manifest of the snapshot; problems go to `diags`.
pub fn load(snapshot: &Snapshot, diags: &mut Vec<Diagnostic>) -> Loaded {
    load_with(snapshot, None, false, diags).0
}

/// Reads every manifest of the snapshot like [`load`], but takes the documents and
/// problems of a file whose path and bytes are the same in `prior` (another revision's
/// loads) from there instead of parsing it again. Also returns this snapshot's loads.
pub fn load_reusing(
    snapshot: &Snapshot,
    prior: Option<&Loads>,
    diags: &mut Vec<Diagnostic>,
) -> (Loaded, Loads) {
    load_with(snapshot, prior, true, diags)
}

/// [`load_reusing`]; the loads are returned only when `keep` is set.
fn load_with(
    snapshot: &Snapshot,
    prior: Option<&Loads>,
    keep: bool,
    diags: &mut Vec<Diagnostic>,
) -> (Loaded, Loads) {
    // Files load independently: slices of them on all cores, joined in path order.
    let files: Vec<(&String, &Arc<[u8]>)> = snapshot.files.iter().collect();
    let parts = in_parallel(&files, FILES_PER_TASK, |files| {
        files
            .iter()
            .map(|&(path, bytes)| {
                let reused = prior
                    .and_then(|p| p.files.get(path))
                    .filter(|(old, _)| Arc::ptr_eq(old, bytes) || old[..] == bytes[..])
                    .map(|(_, load)| Arc::clone(load));
                reused.unwrap_or_else(|| Arc::new(load_one(path, bytes)))
            })
            .collect::<Vec<_>>()
    });
    let mut loaded = Loaded::default();
    let mut loads = Loads::default();
    for (load, (path, bytes)) in parts.into_iter().flatten().zip(files) {
        loaded.fleets.extend(load.fleets.iter().cloned());
        loaded.nodes.extend(load.nodes.iter().cloned());
        loaded.roles.extend(load.roles.iter().cloned());
        loaded.rejected.extend(load.rejected.iter().cloned());
        diags.extend(load.diags.iter().cloned());
        if keep {
            loads.files.insert(path.clone(), (Arc::clone(bytes), load));
        }
    }
    (loaded, loads)
}

/// Files of at least this many are loaded as one task.
const FILES_PER_TASK: usize = 64;

fn load_one(path: &str, bytes: &[u8]) -> FileLoad {
    let mut load = FileLoad::default();
    if is_stray_yaml(path) {
        load.diags.push(
            Diagnostic::new(Code::StrayYaml, path, 0, 0, "this YAML file is not read")
                .hint("manifests live in `centossrv.yaml`, `nodes/` and `roles/`"),
        );
    } else if is_manifest_path(path) {
        let mut diags = Vec::new();
        load_file(path, bytes, &mut load, &mut diags);
        load.diags = diags;
    }
    load
}

/// Decodes `bytes` as UTF-8 or reports where the first invalid byte is.
pub fn decode<'a>(path: &str, bytes: &'a [u8], diags: &mut Vec<Diagnostic>) -> Option<&'a str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let line = valid.matches('\n').count() + 1;
            let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            diags.push(
                Diagnostic::new(
                    Code::NotUtf8,
                    path,
                    u32::try_from(line).unwrap_or(u32::MAX),
                    u32::try_from(column).unwrap_or(u32::MAX),
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                )
                .hint("save the file as UTF-8"),
            );
            None
        }
    }
}

fn load_file(path: &str, bytes: &[u8], loaded: &mut FileLoad, diags: &mut Vec<Diagnostic>) {
    if bytes.len() > MAX_MANIFEST_BYTES {
        diags.push(
            Diagnostic::new(
                Code::FileTooLarge,
                path,
                0,
                0,
                format!(
                    "manifest is {} bytes, more than the {} MiB limit",
                    bytes.len(),
                    MAX_MANIFEST_BYTES / (1024 * 1024)
                ),
            )
            .hint("split it into several files, or move data into `files/`"),
        );
        return;
    }
    let Some(text) = decode(path, bytes, diags) else {
        return;
    };
    let docs = match yaml::parse(text) {
        Ok(docs) => docs,
        Err(e) => {
            diags.push(yaml_error(path, e));
            return;
        }
    };
    let docs: Vec<_> = docs
        .into_iter()
        .filter(|d| d.root.value != yaml::Value::Null)
        .collect();
    if docs.is_empty() {
        diags.push(Diagnostic::new(
            Code::EmptyFile,
            path,
            0,
            0,
            "file holds no YAML documents",
        ));
    }
    for doc in docs {
        load_document(path, doc.root, loaded, diags);
    }
}

fn yaml_error(path: &str, e: YamlError) -> Diagnostic {
    match e {
        YamlError::Syntax { pos, message } => {
            let hint = syntax_hint(&message);
            Diagnostic::new(Code::YamlSyntax, path, pos.line, pos.column, message).maybe_hint(hint)
        }
        YamlError::TooDeep { pos } => Diagnostic::new(
            Code::YamlTooDeep,
            path,
            pos.line,
            pos.column,
            format!("nesting deeper than {} levels", yaml::MAX_DEPTH),
        ),
        YamlError::TooLarge { pos } => Diagnostic::new(
            Code::YamlTooLarge,
            path,
            pos.line,
            pos.column,
            format!("document expands to more than {} nodes", yaml::MAX_NODES),
        )
        .hint("an alias (`*name`) repeats a large anchor many times"),
        YamlError::DuplicateKey { pos, key, first } => Diagnostic::new(
            Code::DuplicateKey,
            path,
            pos.line,
            pos.column,
            format!("duplicate key `{key}`"),
        )
        .related(path, first.line, first.column, "first used here"),
        YamlError::ComplexKey { pos } => Diagnostic::new(
            Code::UnsupportedYaml,
            path,
            pos.line,
            pos.column,
            "mapping keys must be plain scalars",
        ),
        YamlError::MergeKey { pos } => Diagnostic::new(
            Code::UnsupportedYaml,
            path,
            pos.line,
            pos.column,
            "merge keys (`<<`) are not supported",
        )
        .hint("use fleet or role `vars`, or repeat the keys"),
    }
}

/// What usually causes a YAML syntax error, by the parser's message.
fn syntax_hint(message: &str) -> Option<String> {
    let hint = if message.contains("tab") {
        "indent with spaces: YAML does not allow tabs in indentation"
    } else if message.contains("quoted scalar") {
        "check that the quote opened here is closed"
    } else if message.contains("unknown anchor") {
        "define the anchor (`&name`) before its alias (`*name`), in the same document"
    } else if message.contains("mapping values are not allowed") {
        "check this line's indentation against the previous line, or quote a value that contains `: `"
    } else if message.contains("flow mapping") {
        "a `{` is not closed by `}`, or its entries are not separated by `,`"
    } else if message.contains("flow sequence") {
        "a `[` is not closed by `]`, or its items are not separated by `,`"
    } else if message.contains("did not find expected key")
        || message.contains("did not find expected '-'")
        || message.contains("invalid indentation")
    {
        "check the indentation: the keys (or `-` items) of one block must line up"
    } else {
        return None;
    };
    Some(hint.to_owned())
}

const KINDS: [&str; 3] = ["Fleet", "Node", "Role"];

fn load_document(path: &str, root: yaml::Node, loaded: &mut FileLoad, diags: &mut Vec<Diagnostic>) {
    if !matches!(root.value, yaml::Value::Map(_)) {
        diags.push(
            Diagnostic::new(
                Code::NotADocument,
                path,
                root.pos.line,
                root.pos.column,
                "a manifest document must be a mapping with `apiVersion`, `kind`, `metadata` and `spec`",
            ),
        );
        return;
    }
    let mut ok = true;
    match root.entry("apiVersion") {
        None => {
            ok = false;
            diags.push(
                Diagnostic::new(
                    Code::ApiVersion,
                    path,
                    root.pos.line,
                    root.pos.column,
                    "missing `apiVersion`",
                )
                .hint(format!("add `apiVersion: {API_VERSION}`")),
            );
        }
        Some((_, v)) if v.as_str() != Some(API_VERSION) => {
            ok = false;
            diags.push(
                Diagnostic::new(
                    Code::ApiVersion,
                    path,
                    v.pos.line,
                    v.pos.column,
                    format!("unknown apiVersion {}", show(&v.to_json())),
                )
                .hint(format!("this release reads `{API_VERSION}`")),
            );
        }
        Some(_) => {}
    }
    let kind = match root.entry("kind") {
        None => {
            diags.push(
                Diagnostic::new(
                    Code::Kind,
                    path,
                    root.pos.line,
                    root.pos.column,
                    "missing `kind`",
                )
                .hint("one of `Fleet`, `Node`, `Role`"),
            );
            return;
        }
        Some((_, v)) => match v.as_str().filter(|k| KINDS.contains(k)) {
            Some(k) => k.to_owned(),
            None => {
                let found = v.as_str().unwrap_or_default();
                let hint = did_you_mean(found, KINDS)
                    .or_else(|| {
                        KINDS
                            .iter()
                            .copied()
                            .find(|k| k.eq_ignore_ascii_case(found))
                    })
                    .map(|k| format!("did you mean `{k}`?"))
                    .unwrap_or_else(|| "one of `Fleet`, `Node`, `Role`".into());
                diags.push(
                    Diagnostic::new(
                        Code::Kind,
                        path,
                        v.pos.line,
                        v.pos.column,
                        format!("unknown kind {}", show(&v.to_json())),
                    )
                    .hint(hint),
                );
                return;
            }
        },
    };
    let json = root.to_json();
    let checks = checkers();
    let before = diags.len();
    match kind.as_str() {
        "Fleet" => validate(path, &root, &json, &checks.fleet, "", diags),
        "Node" => validate(path, &root, &json, &checks.node, "", diags),
        _ => validate_role(path, &root, &json, diags),
    }
    if !ok || diags.len() > before {
        if kind == "Role" {
            loaded.rejected.extend(declared_ids(&json));
        }
        return;
    }
    match kind.as_str() {
        "Fleet" => push_typed(path, root, json, &mut loaded.fleets, diags),
        "Node" => push_typed(path, root, json, &mut loaded.nodes, diags),
        _ => push_typed(path, root, json, &mut loaded.roles, diags),
    }
}

/// The ids of the resources a role document declares, read from its raw JSON.
fn declared_ids(json: &Json) -> Vec<state::ResourceId> {
    let items = json.pointer("/spec/resources").and_then(Json::as_array);
    items
        .into_iter()
        .flatten()
        .filter_map(Json::as_object)
        .filter_map(|map| {
            let key = type_key_of(map.keys().map(String::as_str)).ok()?;
            let name = map.get(key)?.as_str()?;
            let kind = key.parse().ok()?;
            Some(state::ResourceId::new(kind, name))
        })
        .collect()
}

fn push_typed<T: DeserializeOwned>(
    path: &str,
    tree: yaml::Node,
    json: Json,
    out: &mut Vec<Arc<Located<T>>>,
    diags: &mut Vec<Diagnostic>,
) {
    match serde_json::from_value::<T>(json) {
        Ok(doc) => out.push(Arc::new(Located {
            doc,
            file: path.to_owned(),
            tree,
        })),
        Err(e) => diags.push(Diagnostic::new(
            Code::WrongType,
            path,
            tree.pos.line,
            tree.pos.column,
            e.to_string(),
        )),
    }
}

fn validate_role(path: &str, root: &yaml::Node, json: &Json, diags: &mut Vec<Diagnostic>) {
    let checks = checkers();
    let resources = json
        .pointer("/spec/resources")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let item_prefix = |ptr: &str| -> Option<usize> {
        let rest = ptr.strip_prefix("/spec/resources/")?;
        rest.split('/').next()?.parse().ok()
    };
    // The role schema reports a bad resource as "matches none of the types"; each resource is
    // checked against its own type's schema instead, for precise errors.
    let role_errors: Vec<_> = checks
        .role
        .validator
        .iter_errors(json)
        .filter(|e| item_prefix(e.instance_path().as_str()).is_none())
        .collect();
    let role_errors: Vec<_> = role_errors
        .iter()
        .filter(|e| !is_typo_of_required(e, &role_errors, &checks.role))
        .flat_map(|e| to_diagnostics(path, root, &checks.role, "", e))
        .collect();
    diags.extend(role_errors);
    for (i, item) in resources.iter().enumerate() {
        let pointer = format!("/spec/resources/{i}");
        let Some(map) = item.as_object() else {
            let (pos, _) = root.locate(&pointer);
            diags.push(Diagnostic::new(
                Code::WrongType,
                path,
                pos.line,
                pos.column,
                format!(
                    "a resource must be a mapping like `- package: nginx`, found {}",
                    type_name(item)
                ),
            ));
            continue;
        };
        match type_key_of(map.keys().map(String::as_str)) {
            Ok(key) => {
                let Some((_, checker)) = checks.resources.iter().find(|(k, _)| *k == key) else {
                    continue;
                };
                let errors: Vec<_> = checker.validator.iter_errors(item).collect();
                let errors: Vec<_> = errors
                    .iter()
                    .filter(|e| !is_typo_of_required(e, &errors, checker))
                    .flat_map(|e| to_diagnostics(path, root, checker, &pointer, e))
                    .collect();
                diags.extend(errors);
            }
            Err(found) => {
                let (pos, _) = root.locate(&pointer);
                let d = if found.is_empty() {
                    let guess = map.keys().find_map(|k| {
                        did_you_mean(k, crate::manifest::TYPE_KEYS).map(|t| (k.clone(), t))
                    });
                    Diagnostic::new(
                        Code::ResourceType,
                        path,
                        pos.line,
                        pos.column,
                        "resource has no type key",
                    )
                    .hint(match guess {
                        Some((k, t)) => format!("did you mean `{t}` instead of `{k}`?"),
                        None => format!(
                            "start it with one of {}",
                            crate::manifest::TYPE_KEYS
                                .map(|k| format!("`{k}:`"))
                                .join(", ")
                        ),
                    })
                } else {
                    Diagnostic::new(
                        Code::ResourceType,
                        path,
                        pos.line,
                        pos.column,
                        format!(
                            "resource has several type keys: {}",
                            found
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .hint("declare each resource as its own list item")
                };
                diags.push(d);
            }
        }
    }
}

fn validate(
    path: &str,
    root: &yaml::Node,
    json: &Json,
    checker: &Checker,
    prefix: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let errors: Vec<_> = checker.validator.iter_errors(json).collect();
    let errors: Vec<_> = errors
        .iter()
        .filter(|e| !is_typo_of_required(e, &errors, checker))
        .flat_map(|e| to_diagnostics(path, root, checker, prefix, e))
        .collect();
    diags.extend(errors);
}

/// Whether `e` is a missing required key that an unknown key of the same mapping is a typo
/// of (`selectr:` for `selector:`): the unknown key's diagnostic already says so.
fn is_typo_of_required(
    e: &jsonschema::ValidationError<'_>,
    all: &[jsonschema::ValidationError<'_>],
    checker: &Checker,
) -> bool {
    let ValidationErrorKind::Required { property } = e.kind() else {
        return false;
    };
    let Some(name) = property.as_str() else {
        return false;
    };
    let at = e.instance_path().as_str();
    let allowed = checker.allowed_keys(at);
    all.iter()
        .filter(|other| other.instance_path().as_str() == at)
        .any(|other| match other.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected
                .iter()
                .any(|k| did_you_mean(k, allowed.iter().map(String::as_str)) == Some(name)),
            _ => false,
        })
}

fn show(v: &Json) -> String {
    match v {
        Json::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

fn expected_type(kind: &TypeKind) -> String {
    let name = |t: &str| -> String {
        match t {
            "object" => "a mapping".into(),
            "array" => "a list".into(),
            "string" => "a string".into(),
            "integer" => "an integer".into(),
            "number" => "a number".into(),
            "boolean" => "a boolean (`true` or `false`)".into(),
            "null" => "null".into(),
            other => other.to_owned(),
        }
    };
    match kind {
        TypeKind::Single(t) => name(&t.to_string()),
        TypeKind::Multiple(set) => {
            let names: Vec<String> = set
                .iter()
                .map(|t| t.to_string())
                .filter(|t| t != "null")
                .map(|t| name(&t))
                .collect();
            names.join(" or ")
        }
    }
}

fn field_name(pointer: &str) -> String {
    let last = pointer.rsplit('/').next().unwrap_or_default();
    if last.parse::<usize>().is_ok() || last.is_empty() {
        "value".into()
    } else {
        format!("`{}`", last.replace("~1", "/").replace("~0", "~"))
    }
}

/// The diagnostics of one schema error: none for `apiVersion`, which `load_document` checks
/// itself; one per unknown key, each at its key with its own hint; else one.
fn to_diagnostics(
    path: &str,
    root: &yaml::Node,
    checker: &Checker,
    prefix: &str,
    e: &jsonschema::ValidationError<'_>,
) -> Vec<Diagnostic> {
    let inner = e.instance_path().as_str();
    let at_root = prefix.is_empty() && inner.is_empty();
    match e.kind() {
        ValidationErrorKind::Required { property }
            if at_root && property.as_str() == Some("apiVersion") =>
        {
            Vec::new()
        }
        _ if prefix.is_empty() && inner == "/apiVersion" => Vec::new(),
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let pointer = format!("{prefix}{inner}");
            let (value_pos, _) = root.locate(&pointer);
            let allowed = checker.allowed_keys(inner);
            unexpected
                .iter()
                .map(|key| {
                    let (_, kp) = root.locate(&format!(
                        "{pointer}/{}",
                        key.replace('~', "~0").replace('/', "~1")
                    ));
                    let pos = kp.unwrap_or(value_pos);
                    let hint = did_you_mean(key, allowed.iter().map(String::as_str))
                        .map(|k| format!("did you mean `{k}`?"))
                        .unwrap_or_else(|| {
                            format!(
                                "allowed here: {}",
                                allowed
                                    .iter()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        });
                    Diagnostic::new(
                        Code::UnknownKey,
                        path,
                        pos.line,
                        pos.column,
                        format!("unknown key `{key}`"),
                    )
                    .hint(hint)
                })
                .collect()
        }
        _ => vec![to_diagnostic(path, root, prefix, e)],
    }
}

/// Turns one schema error (other than unknown keys) into a located diagnostic with a hint
/// where one helps.
fn to_diagnostic(
    path: &str,
    root: &yaml::Node,
    prefix: &str,
    e: &jsonschema::ValidationError<'_>,
) -> Diagnostic {
    let inner = e.instance_path().as_str().to_owned();
    let pointer = format!("{prefix}{inner}");
    let (value_pos, key_pos) = root.locate(&pointer);
    let at =
        |code: Code, pos: Pos, msg: String| Diagnostic::new(code, path, pos.line, pos.column, msg);
    let instance = e.instance();
    let field = field_name(&pointer);
    match e.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let hint = match name {
                "metadata" => Some("add `metadata: {name: ...}`".to_owned()),
                "selector" => Some(
                    "add `selector: {matchLabels: {role: ...}}`, or `selector: {}` for every node"
                        .to_owned(),
                ),
                _ => None,
            };
            at(
                Code::MissingKey,
                key_pos.unwrap_or(value_pos),
                format!("missing required key `{name}`"),
            )
            .maybe_hint(hint)
        }
        ValidationErrorKind::Type { kind } => {
            let expected = expected_type(kind);
            let node_is_number = {
                let (_, _) = (value_pos, key_pos);
                matches!(instance.as_ref(), Json::Number(_))
            };
            let as_text = instance.as_str().unwrap_or_default();
            let hint = if expected.starts_with("a boolean") && !as_text.is_empty() {
                let key = field.trim_matches('`');
                match as_text.to_ascii_lowercase().as_str() {
                    "yes" | "y" | "on" | "true" => Some(format!("write `{key}: true`, unquoted")),
                    "no" | "n" | "off" | "false" => Some(format!("write `{key}: false`, unquoted")),
                    _ => None,
                }
            } else if expected.starts_with("an integer") && as_text.parse::<i64>().is_ok() {
                let key = field.trim_matches('`');
                Some(format!("remove the quotes: `{key}: {as_text}`"))
            } else if node_is_number && expected.starts_with("a string") {
                let is_mode = pointer.ends_with("/mode");
                let key = field.trim_matches('`');
                Some(if is_mode {
                    format!(
                        "quote it, e.g. `{key}: \"0644\"`; unquoted, YAML reads a mode as a decimal number"
                    )
                } else {
                    format!("quote it: `{key}: \"{instance}\"`")
                })
            } else {
                None
            };
            at(
                Code::WrongType,
                value_pos,
                format!("{field} must be {expected}, found {}", type_name(instance)),
            )
            .maybe_hint(hint)
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| {
                            o.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| o.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let found = instance
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| instance.to_string());
            let hint = did_you_mean(&found, opts.iter().map(String::as_str))
                .or_else(|| {
                    opts.iter()
                        .map(String::as_str)
                        .find(|o| o.eq_ignore_ascii_case(&found))
                })
                .map(|o| format!("did you mean `{o}`?"));
            at(
                Code::InvalidValue,
                value_pos,
                format!(
                    "{field} must be one of {}, found `{found}`",
                    opts.iter()
                        .map(|o| format!("`{o}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .maybe_hint(hint)
        }
        ValidationErrorKind::Pattern { pattern } => {
            let found = instance.as_str().unwrap_or_default();
            let hint = if pointer.ends_with("/metadata/name") {
                Some("names use lower-case letters, digits, `-` and `.`, and start and end with a letter or digit".to_owned())
            } else if pointer.ends_with("/mode") {
                Some("an octal mode such as \"0644\" or \"0755\"".to_owned())
            } else if pointer.ends_with("/sysctl") {
                Some("a dotted kernel parameter name such as `net.core.somaxconn`".to_owned())
            } else {
                None
            };
            at(
                Code::InvalidValue,
                value_pos,
                format!("{field} `{found}` does not match `{pattern}`"),
            )
            .maybe_hint(hint)
        }
        ValidationErrorKind::AnyOf { context } => {
            // When every alternative is a plain type (a sysctl `value`: an integer or a
            // string), name the types instead of quoting the schema.
            let types: Option<Vec<String>> = context
                .iter()
                .map(|branch| match branch.as_slice() {
                    [only] if only.instance_path().as_str() == inner => match only.kind() {
                        ValidationErrorKind::Type { kind } => Some(expected_type(kind)),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            match types {
                Some(types) if !types.is_empty() => at(
                    Code::WrongType,
                    value_pos,
                    format!(
                        "{field} must be {}, found {}",
                        types.join(" or "),
                        type_name(instance)
                    ),
                ),
                _ => at(
                    Code::InvalidValue,
                    value_pos,
                    format!("{field}: {}", e.masked()),
                ),
            }
        }
        ValidationErrorKind::Minimum { limit } => at(
            Code::InvalidValue,
            value_pos,
            format!("{field} must be at least {limit}, found {instance}"),
        ),
        ValidationErrorKind::Maximum { limit } => at(
            Code::InvalidValue,
            value_pos,
            format!("{field} must be at most {limit}, found {instance}"),
        ),
        ValidationErrorKind::Constant { expected_value } => at(
            Code::InvalidValue,
            value_pos,
            format!("{field} must be {}", show(expected_value)),
        ),
        _ => at(
            Code::InvalidValue,
            value_pos,
            format!("{field}: {}", e.masked()),
        ),
    }
}
