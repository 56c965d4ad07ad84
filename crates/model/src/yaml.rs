//! The one YAML reader: text -> documents of position-carrying nodes, with guards against
//! deep nesting and alias bombs applied while parsing, before anything else sees the data.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of sequences and mappings accepted in one document.
pub const MAX_DEPTH: usize = 64;
/// Most nodes one file may hold after expanding aliases (all its documents together: a
/// per-document count let a file of many small alias bombs expand without bound).
pub const MAX_NODES: usize = 1_000_000;

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    fn from_marker(m: &Marker) -> Pos {
        Pos {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
        }
    }
}

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A mapping key (always a scalar) and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Node {
    /// The node under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The entry (key and value) under `key` when this node is a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON for schema validation and deserialization.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The node at a JSON pointer (`/spec/resources/3/mode`), and the key node of its last
    /// segment when that segment is a mapping key. Follows as deep as it can.
    pub fn locate(&self, pointer: &str) -> (Pos, Option<Pos>) {
        let mut node = self;
        let mut key_pos = None;
        for raw in pointer.split('/').skip(1) {
            let segment = raw.replace("~1", "/").replace("~0", "~");
            let next = match &node.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.name == segment)
                    .map(|(k, v)| (Some(k.pos), v)),
                Value::Seq(items) => segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|v| (None, v)),
                _ => None,
            };
            match next {
                Some((k, v)) => {
                    key_pos = k;
                    node = v;
                }
                None => return (node.pos, None),
            }
        }
        (node.pos, key_pos)
    }

    /// Whether this is a plain scalar that YAML read as a number (`0644` becomes 644).
    pub fn is_number(&self) -> bool {
        matches!(self.value, Value::Int(_) | Value::Float(_))
    }
}

/// Why a YAML text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YamlError {
    Syntax { pos: Pos, message: String },
    TooDeep { pos: Pos },
    TooLarge { pos: Pos },
    DuplicateKey { pos: Pos, key: String, first: Pos },
    ComplexKey { pos: Pos },
    MergeKey { pos: Pos },
}

/// One document of a multi-document file and the position of its start.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: Node,
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
    },
}

/// Parses every document of `text`. Stops at the first error: a YAML error makes positions
/// after it unreliable.
pub fn parse(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut nodes_in_file = 0usize;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| {
            let pos = Pos::from_marker(e.marker());
            // The scanner's own guard against deep flow nesting (`[[[[...`) fires before the
            // parser reaches `MAX_DEPTH`: it is the same problem.
            if e.info() == "recursion limit exceeded" {
                YamlError::TooDeep { pos }
            } else {
                YamlError::Syntax {
                    pos,
                    message: e.info().to_owned(),
                }
            }
        })?;
        let pos = Pos::from_marker(&marker);
        let completed: Option<(Node, usize, usize)> = match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart => {
                anchors.clear();
                None
            }
            Event::Alias(id) => {
                let (node, count) = anchors.get(&id).cloned().ok_or(YamlError::Syntax {
                    pos,
                    message: "alias to an unknown anchor".into(),
                })?;
                Some((Node { pos, ..node }, 0, count))
            }
            Event::Scalar(text, style, anchor, tag) => {
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == TScalarStyle::Plain && !forced_str {
                    resolve_plain(&text)
                } else {
                    Value::Str(text)
                };
                Some((Node { value, pos }, anchor, 1))
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError::TooDeep { pos });
                }
                stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError::TooDeep { pos });
                }
                stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => {
                    let count = 1;
                    Some((
                        Node {
                            value: Value::Seq(items),
                            pos,
                        },
                        anchor,
                        count,
                    ))
                }
                Some(Frame::Map {
                    pos,
                    anchor,
                    entries,
                    ..
                }) => {
                    let count = 1;
                    Some((
                        Node {
                            value: Value::Map(entries),
                            pos,
                        },
                        anchor,
                        count,
                    ))
                }
                None => None,
            },
        };
        let Some((node, anchor, added)) = completed else {
            continue;
        };
        nodes_in_file = nodes_in_file.saturating_add(added);
        if nodes_in_file > MAX_NODES {
            return Err(YamlError::TooLarge { pos });
        }
        if anchor > 0 {
            // The count of a subtree: what an alias to it would add.
            let size = subtree_size(&node);
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            None => docs.push(Document { root: node }),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                pos: map_pos,
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    let name = match node.value {
                        Value::Str(s) => s,
                        Value::Null => "null".to_owned(),
                        Value::Bool(b) => b.to_string(),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(YamlError::ComplexKey { pos: node.pos });
                        }
                    };
                    if name == "<<" {
                        return Err(YamlError::MergeKey { pos: node.pos });
                    }
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name) {
                        return Err(YamlError::DuplicateKey {
                            pos: node.pos,
                            key: name,
                            first: first.pos,
                        });
                    }
                    // yaml-rust2 marks a block mapping at the `:` of its first key; the
                    // mapping starts at that key.
                    if entries.is_empty() {
                        *map_pos = (*map_pos).min(node.pos);
                    }
                    *pending_key = Some(Key {
                        name,
                        pos: node.pos,
                    });
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
    Ok(docs)
}

fn subtree_size(node: &Node) -> usize {
    let mut count = 0usize;
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        count += 1;
        match &n.value {
            Value::Seq(items) => todo.extend(items),
            Value::Map(entries) => todo.extend(entries.iter().map(|(_, v)| v)),
            _ => {}
        }
    }
    count
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::Int(i);
    }
    let looks_float = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().any(|b| b.is_ascii_digit());
    if looks_float && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = parse(text).expect("parses");
        assert_eq!(docs.len(), 1);
        docs.remove(0).root
    }

    #[test]
    fn positions_are_one_based() {
        let root = one("a: 1\nb:\n  c: x\n");
        let (pos, key) = root.locate("/b/c");
        assert_eq!(pos, Pos { line: 3, column: 6 });
        assert_eq!(key, Some(Pos { line: 3, column: 3 }));
    }

    #[test]
    fn block_mapping_starts_at_its_first_key() {
        let root = one("a: 1\nlist:\n  - name: x\n    port: 80\n");
        assert_eq!(root.pos, Pos { line: 1, column: 1 });
        assert_eq!(root.locate("/list/0").0, Pos { line: 3, column: 5 });
        let root = one("{a: 1}\n");
        assert_eq!(root.pos, Pos { line: 1, column: 1 });
    }

    #[test]
    fn core_schema() {
        let root = one("a: 0644\nb: '0644'\nc: yes\nd: ~\ne: 1.5\nf: 0x1F\n");
        assert_eq!(root.get("a").map(|n| &n.value), Some(&Value::Int(644)));
        assert_eq!(
            root.get("b").map(|n| &n.value),
            Some(&Value::Str("0644".into()))
        );
        assert_eq!(
            root.get("c").map(|n| &n.value),
            Some(&Value::Str("yes".into()))
        );
        assert_eq!(root.get("d").map(|n| &n.value), Some(&Value::Null));
        assert_eq!(root.get("e").map(|n| &n.value), Some(&Value::Float(1.5)));
        assert_eq!(root.get("f").map(|n| &n.value), Some(&Value::Int(31)));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in "bcdefghij".chars() {
            text.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        assert!(matches!(parse(&text), Err(YamlError::TooLarge { .. })));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(10_000);
        assert!(matches!(parse(&text), Err(YamlError::TooDeep { .. })));
        let text = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(matches!(parse(&text), Err(YamlError::TooDeep { .. })));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert!(matches!(
            parse("a: 1\na: 2\n"),
            Err(YamlError::DuplicateKey { .. })
        ));
    }
}
