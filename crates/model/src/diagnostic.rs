//! Diagnostics: every problem the compiler finds, with a stable code, a location and a hint.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $name:literal, $doc:literal;)*) => {
        /// Stable diagnostic codes. Never renumber: CI configurations and docs refer to them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $(#[doc = $doc] $variant,)* }

        impl Code {
            /// Every code, for documentation.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
            /// The code as written in output, e.g. `E0103`.
            pub fn as_str(self) -> &'static str { match self { $(Code::$variant => $code,)* } }
            /// A short kebab-case name, e.g. `unknown-key`.
            pub fn name(self) -> &'static str { match self { $(Code::$variant => $name,)* } }
            /// One sentence on what the code means.
            pub fn description(self) -> &'static str { match self { $(Code::$variant => $doc,)* } }
        }
    };
}

codes! {
    NotUtf8 = "E0001", "not-utf8", "A manifest, template or source file is not valid UTF-8.";
    FileTooLarge = "E0002", "file-too-large", "A manifest file exceeds the size limit.";
    YamlSyntax = "E0003", "yaml-syntax", "The file is not valid YAML.";
    YamlTooDeep = "E0004", "yaml-too-deep", "YAML nesting exceeds the depth limit.";
    YamlTooLarge = "E0005", "yaml-too-large", "A document has too many nodes once aliases are expanded.";
    DuplicateKey = "E0006", "duplicate-key", "A mapping has the same key twice.";
    UnsupportedYaml = "E0007", "unsupported-yaml", "A YAML feature centossrv does not accept (complex keys, merge keys).";
    EmptyFile = "W0001", "empty-file", "A manifest file holds no documents.";
    StrayYaml = "W0002", "stray-yaml", "A YAML file outside the manifest folders is not read.";
    ApiVersion = "E0101", "api-version", "`apiVersion` is missing or unknown.";
    Kind = "E0102", "kind", "`kind` is missing or unknown.";
    UnknownKey = "E0103", "unknown-key", "A key the schema does not allow.";
    WrongType = "E0104", "wrong-type", "A value of the wrong type.";
    MissingKey = "E0105", "missing-key", "A required key is missing.";
    InvalidValue = "E0106", "invalid-value", "A value outside what the schema allows (enum, pattern, range).";
    ResourceType = "E0107", "resource-type", "A resource does not name exactly one type key.";
    NotADocument = "E0108", "not-a-document", "A YAML document is not a mapping.";
    DuplicateNode = "E0201", "duplicate-node", "Two Node documents with the same name.";
    DuplicateRole = "E0202", "duplicate-role", "Two Role documents with the same name.";
    DuplicateFleet = "E0203", "duplicate-fleet", "More than one Fleet document.";
    DuplicateResource = "E0204", "duplicate-resource", "A role declares the same resource twice.";
    BadReference = "E0205", "bad-reference", "A `requires`/`notify` entry is not `type:name`.";
    NotifyNotService = "E0206", "notify-not-service", "A `notify` target is not a service.";
    InvalidField = "E0207", "invalid-field", "A field's value is well-typed but not meaningful (relative path, bad duration, conflicting fields).";
    ReservedVar = "E0208", "reserved-var", "A variable uses a name reserved for template context.";
    SelectorMatchesNothing = "W0201", "selector-matches-nothing", "A role's selector matches no node.";
    NodeWithoutRole = "W0202", "node-without-role", "A node is selected by no role.";
    Conflict = "E0301", "conflict", "Two roles give one resource different specs on the same node.";
    UnknownTarget = "E0302", "unknown-target", "A `requires`/`notify` target is not declared on the node.";
    Cycle = "E0303", "cycle", "Resources on a node depend on each other in a cycle.";
    TemplateMissing = "E0401", "template-missing", "A `template` refers to a file that is not in the repository.";
    TemplateSyntax = "E0402", "template-syntax", "A template does not parse.";
    TemplateRender = "E0403", "template-render", "A template fails to render for a node (undefined variable, failed filter).";
    SourceMissing = "E0404", "source-missing", "A `source` refers to a file that is not in the repository.";
    AccessBinding = "E0601", "access-binding", "A problem in `access.yaml` (the reconciler's role bindings).";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Code {
    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('W') {
            Severity::Warning
        } else {
            Severity::Error
        }
    }
}

/// A secondary location that explains a diagnostic ("first declared here").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Related {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// One problem, located in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub file: String,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: u32,
    /// 1-based, in characters; 0 when the problem concerns the whole file or line.
    pub column: u32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

impl Diagnostic {
    pub fn new(code: Code, file: &str, line: u32, column: u32, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
            hint: None,
            related: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub fn related(
        mut self,
        file: &str,
        line: u32,
        column: u32,
        message: impl Into<String>,
    ) -> Self {
        self.related.push(Related {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    fn sort_key(&self) -> (&str, u32, u32, Code, &str) {
        (&self.file, self.line, self.column, self.code, &self.message)
    }
}

impl fmt::Display for Diagnostic {
    /// One line, `file:line:col: error[E0103]: message`, as editors and CI annotate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}[{}]: {}",
            self.file, self.line, self.column, self.code, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Sorts diagnostics by location and drops exact duplicates.
pub fn normalize(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    diags.dedup();
}

/// The closest candidate to `word`, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
