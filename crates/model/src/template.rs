//! Jinja2 templates (minijinja, strict undefined) over the snapshot's files, and the variable
//! context each node and role renders with.

use crate::diagnostic::{Code, Diagnostic};
use minijinja::{Environment, UndefinedBehavior, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Names the template context provides; variables may not use them.
pub const RESERVED_VARS: [&str; 4] = ["node", "inventory", "role", "fleet"];

/// Instructions a single render may execute before it is stopped (runaway loops).
const FUEL: u64 = 5_000_000;

/// Largest text a single render may produce, in bytes. Without it `{{ 'x' * 100000000 }}`
/// (or a runaway loop) put 100 MB into the desired state of every node the template lands
/// on: gigabytes for a small fleet.
pub const MAX_RENDERED_BYTES: usize = 4 * 1024 * 1024;

/// A template engine that reads templates from the snapshot.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Templates that ran away (out of fuel, output too large), with their diagnostic. They
    /// are not rendered again: each further node would burn the whole budget again, and a
    /// compile with hundreds of nodes took minutes to report one runaway loop.
    runaway: Mutex<HashMap<String, Diagnostic>>,
    /// Whether `runaway` holds anything (read on every reused render, without the lock).
    any_runaway: AtomicBool,
}

/// An output buffer that refuses to grow past `MAX_RENDERED_BYTES`.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > MAX_RENDERED_BYTES {
            self.over = true;
            return Err(std::io::Error::other("rendered output too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Templates {
    pub fn new(files: &BTreeMap<String, Arc<[u8]>>) -> Templates {
        let files: BTreeMap<String, Arc<[u8]>> = files
            .iter()
            .filter(|(p, _)| p.starts_with("files/") || p.starts_with("templates/"))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect();
        let mut env = Environment::new();
        // minijinja names the undefined variable and shows the template's surroundings only
        // in debug mode, which it turns on for debug builds alone: release binaries then gave
        // less helpful errors than the tests checked. The cost is paid on errors only.
        env.set_debug(true);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        // Config files are not HTML: never escape output. minijinja's default picks escaping
        // from the name (`.html.j2` -> HTML, `.yml.j2`/`.json.j2` -> JSON-quoted strings),
        // which silently broke e.g. `files/prometheus.yml.j2`. Ansible never auto-escapes.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Ansible's defaults, so templates carried over render the same.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_loader(move |name| match files.get(name) {
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Ok(Some(text.to_owned())),
                Err(e) => Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("template is not valid UTF-8 (byte {})", e.valid_up_to()),
                )),
            },
            None => Ok(None),
        });
        Templates {
            env,
            runaway: Mutex::new(HashMap::new()),
            any_runaway: AtomicBool::new(false),
        }
    }

    /// Parses `name` (and what it includes when rendered); a syntax error becomes a diagnostic
    /// located in the template file.
    pub fn check(&self, name: &str) -> Result<(), Diagnostic> {
        self.env
            .get_template(name)
            .map(|_| ())
            .map_err(|e| template_diagnostic(Code::TemplateSyntax, name, &e))
    }

    /// Renders `name` with `ctx`. A template that ran away once fails again at once, with
    /// the same diagnostic.
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, Diagnostic> {
        let runaway = |this: &Self| this.runaway.lock().ok()?.get(name).cloned();
        if let Some(d) = runaway(self) {
            return Err(d);
        }
        let template = self
            .env
            .get_template(name)
            .map_err(|e| template_diagnostic(Code::TemplateSyntax, name, &e))?;
        let mut out = Capped::default();
        let result = template.render_captured_to(ctx, &mut out).map(drop);
        let d = match result {
            Ok(()) => {
                return Ok(String::from_utf8(out.bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
            }
            Err(_) if out.over => Diagnostic::new(
                Code::TemplateRender,
                name,
                0,
                0,
                format!(
                    "rendered output is larger than {} MiB",
                    MAX_RENDERED_BYTES / (1024 * 1024)
                ),
            )
            .hint(format!(
                "look for a runaway loop or a huge repetition; {RENDERED_ONCE}"
            )),
            Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => {
                template_diagnostic(Code::TemplateRender, name, &e)
            }
            Err(e) => return Err(template_diagnostic(Code::TemplateRender, name, &e)),
        };
        if let Ok(mut r) = self.runaway.lock() {
            r.insert(name.to_owned(), d.clone());
            self.any_runaway.store(true, Ordering::Release);
        }
        Err(d)
    }

    /// Whether `name` ran away in an earlier render (it fails at once from now on).
    pub fn ran_away(&self, name: &str) -> bool {
        self.any_runaway.load(Ordering::Acquire)
            && self.runaway.lock().is_ok_and(|r| r.contains_key(name))
    }

    /// The templates that ran away, by name.
    pub fn runaway(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .runaway
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// Says why a runaway template's diagnostic lists nodes it was not rendered for.
const RENDERED_ONCE: &str =
    "once a template runs away it is not rendered again: the other nodes get this error too";

fn template_diagnostic(code: Code, name: &str, e: &minijinja::Error) -> Diagnostic {
    // The innermost error says where it really happened (an included template, say).
    let mut inner: &minijinja::Error = e;
    while let Some(next) =
        std::error::Error::source(inner).and_then(|s| s.downcast_ref::<minijinja::Error>())
    {
        inner = next;
    }
    let file = inner.name().or(e.name()).unwrap_or(name);
    let line = inner.line().or(e.line()).unwrap_or(0);
    let message = match inner.detail() {
        Some(detail) => format!("{}: {detail}", inner.kind()),
        None => inner.kind().to_string(),
    };
    let about_labels = message.contains("labels.") || message.contains("labels[");
    let hint = match inner.kind() {
        minijinja::ErrorKind::UndefinedError if about_labels => Some(
            "a node lacks this label; when looping over `inventory`, guard with `{% if \"key\" in n.labels %}`"
                .to_owned(),
        ),
        minijinja::ErrorKind::UndefinedError => Some(
            "define the variable in the node's, role's or fleet's `vars`, or guard it with `{% if x is defined %}`"
                .to_owned(),
        ),
        minijinja::ErrorKind::TemplateNotFound => {
            Some("templates and includes are repository paths such as `files/nginx/base.j2`".to_owned())
        }
        minijinja::ErrorKind::OutOfFuel => Some(format!(
            "the template runs too long; look for a runaway loop; {RENDERED_ONCE}"
        )),
        _ => None,
    };
    Diagnostic::new(
        code,
        file,
        u32::try_from(line).unwrap_or(u32::MAX),
        0,
        message,
    )
    .maybe_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_auto_escape_whatever_the_extension() {
        let body: Arc<[u8]> = Arc::from(&b"x: {{ v }}\n"[..]);
        let files: BTreeMap<String, Arc<[u8]>> = ["yml", "yaml", "json", "html", "xml", "conf"]
            .iter()
            .map(|ext| (format!("files/t.{ext}.j2"), body.clone()))
            .collect();
        let templates = Templates::new(&files);
        let ctx = minijinja::context! { v => "a<b & \"c\"" };
        for name in files.keys() {
            assert_eq!(
                templates.render(name, &ctx).ok().as_deref(),
                Some("x: a<b & \"c\"\n"),
                "{name}"
            );
        }
    }
}
