//! Rendering a chat template as runtimes do. minijinja (the engine text-generation-inference
//! and mistral.rs use) configured like transformers' `_compile_jinja_template`:
//! `trim_blocks`, `lstrip_blocks`, loop controls, Python's str/dict/list methods
//! (minijinja-contrib pycompat), `raise_exception`, `strftime_now` (pinned, see `clock`),
//! `tojson` as `json.dumps(ensure_ascii=False)` and Python's spelling of printed values
//! (see `python`), no autoescaping, and the variables `apply_chat_template` passes:
//! `messages`, `tools`, `documents`, `add_generation_prompt` and the special tokens.
//! transformers' `{% generation %}` tag (assistant-mask tracking) renders its body.
//!
//! Every render is bounded: fuel (instructions, and bytes created — minijinja charges
//! allocations before making them), a recursion limit and an output cap, so a template
//! that loops or doubles a string forever ends as [`RenderError::Budget`] within
//! milliseconds. minijinja is a Rust interpreter without Python's object model:
//! `().__class__` is undefined here, so a hostile template cannot escape while we render
//! it — the static rules (`scan`) say what it would do in a Python runtime.

use std::fmt;
use std::io;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

use super::clock::PINNED;
use super::python;

/// The budget of one render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// minijinja fuel: about one unit per instruction and per 64 bytes created. Real
    /// templates use a few thousand for the standard conversations.
    pub fuel: u64,
    /// Nested calls, loops and conditions.
    pub recursion: usize,
    /// Bytes of rendered prompt.
    pub output_bytes: usize,
}

/// The limits `check` and `template` render with.
pub const LIMITS: Limits = Limits {
    fuel: 2_000_000,
    recursion: 200,
    output_bytes: 1 << 20,
};

/// Why a render failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderError {
    /// The template does not parse; `offset` is a byte offset into the template.
    Syntax {
        message: String,
        offset: Option<usize>,
        line: Option<usize>,
    },
    /// The template called `raise_exception(message)` (at `line`, when known).
    Raised {
        message: String,
        line: Option<usize>,
    },
    /// Fuel, recursion or output size ran out.
    Budget(String),
    /// Any other failure while rendering (an unknown filter, a type error, an undefined
    /// value used as a string ...).
    Failed {
        message: String,
        line: Option<usize>,
    },
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Syntax { message, .. } => write!(f, "syntax error: {message}"),
            RenderError::Raised { message, .. } => {
                write!(f, "the template raised an exception: {message}")
            }
            RenderError::Budget(m) => write!(f, "the render exceeded its budget: {m}"),
            RenderError::Failed { message, .. } => write!(f, "render failed: {message}"),
        }
    }
}

/// What `raise_exception` leaves in the error chain, so the render can tell a template's
/// own refusal from an engine failure.
#[derive(Debug)]
struct Raised(String);

impl fmt::Display for Raised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// The special tokens apply_chat_template passes as variables (`bos_token` ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub unk: Option<String>,
    pub pad: Option<String>,
}

/// One conversation to render, with what else the caller passes.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub name: String,
    /// A JSON array of message objects.
    pub messages: serde_json::Value,
    /// Tool definitions (JSON schemas), or none.
    pub tools: Option<serde_json::Value>,
    pub add_generation_prompt: bool,
    /// Extra template variables (`enable_thinking: false`, `date_string` ...).
    pub variables: serde_json::Map<String, serde_json::Value>,
}

/// `{% generation %}` / `{% endgeneration %}` become `{% if true %}` / `{% endif %}`
/// padded to the same length: the body renders (as in transformers), whitespace control
/// is kept, and every byte offset still points at the original source.
pub(crate) fn without_generation_tags(source: &str) -> std::borrow::Cow<'_, str> {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let tag = RE.get_or_init(|| {
        regex::Regex::new(r"(\{%[-+]?\s*)(generation|endgeneration)(\s*[-+]?%\})").ok()
    });
    let Some(tag) = tag.as_ref().filter(|_| source.contains("generation")) else {
        return source.into();
    };
    tag.replace_all(source, |caps: &regex::Captures<'_>| {
        let word = caps.get(2).map_or("", |m| m.as_str());
        let replacement = if word == "generation" {
            "if true"
        } else {
            "endif"
        };
        let pad = word.len().saturating_sub(replacement.len());
        format!("{}{replacement}{}{}", &caps[1], " ".repeat(pad), &caps[3])
    })
}

/// A template ready to render many conversations.
pub struct Renderer {
    env: Environment<'static>,
    limits: Limits,
}

const NAME: &str = "chat_template";

/// Jinja's default delimiters with transformers' `trim_blocks` and `lstrip_blocks`.
pub(crate) fn syntax() -> Result<minijinja::syntax::SyntaxConfig, Error> {
    minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
}

/// The environment transformers renders with (its `_compile_jinja_template`).
fn environment(limits: Limits) -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_syntax(syntax()?);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.recursion);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(python::format_value);
    env.add_filter("tojson", python::tojson);
    env.add_filter("indent", python::indent);
    // Jinja2's tests, not minijinja's: `none is iterable` is false in Python (templates
    // guard `tools | length` with it), and strings and dicts are sequences.
    env.add_test("iterable", |v: Value| {
        use minijinja::value::ValueKind as K;
        matches!(
            v.kind(),
            K::String | K::Seq | K::Map | K::Iterable | K::Bytes | K::Undefined
        )
    });
    env.add_test("sequence", |v: Value| {
        use minijinja::value::ValueKind as K;
        matches!(
            v.kind(),
            K::String | K::Seq | K::Map | K::Bytes | K::Undefined
        )
    });
    env.add_function(
        "raise_exception",
        |message: Value| -> Result<Value, Error> {
            let text = python::str_of(&message)?;
            Err(Error::new(ErrorKind::InvalidOperation, text.clone()).with_source(Raised(text)))
        },
    );
    env.add_function(
        "strftime_now",
        |state: &State, format: String| -> Result<String, Error> {
            state.consume_fuel(format.len() as u64 + 1)?;
            Ok(PINNED.strftime(&format))
        },
    );
    Ok(env)
}

impl Renderer {
    /// Parse `source`; a syntax error is returned with its position.
    pub fn new(source: &str, limits: Limits) -> Result<Renderer, RenderError> {
        let mut env = environment(limits).map_err(|e| failed(&e))?;
        let prepared = without_generation_tags(source).into_owned();
        env.add_template_owned(NAME, prepared).map_err(|e| {
            let message = e.detail().unwrap_or("invalid template").to_string();
            RenderError::Syntax {
                message,
                offset: e.range().map(|r| r.start),
                line: e.line(),
            }
        })?;
        Ok(Renderer { env, limits })
    }

    /// Render one conversation with the given special tokens.
    pub fn render(
        &self,
        conversation: &Conversation,
        tokens: &SpecialTokens,
    ) -> Result<String, RenderError> {
        let template = self.env.get_template(NAME).map_err(|e| failed(&e))?;
        let mut vars = serde_json::Map::new();
        for (name, value) in [
            ("bos_token", &tokens.bos),
            ("eos_token", &tokens.eos),
            ("unk_token", &tokens.unk),
            ("pad_token", &tokens.pad),
        ] {
            if let Some(v) = value {
                vars.insert(name.into(), serde_json::Value::String(v.clone()));
            }
        }
        for (k, v) in &conversation.variables {
            vars.insert(k.clone(), v.clone());
        }
        vars.insert("messages".into(), conversation.messages.clone());
        vars.insert(
            "tools".into(),
            conversation
                .tools
                .clone()
                .unwrap_or(serde_json::Value::Null),
        );
        vars.insert("documents".into(), serde_json::Value::Null);
        vars.insert(
            "add_generation_prompt".into(),
            serde_json::Value::Bool(conversation.add_generation_prompt),
        );
        let ctx = to_value(&serde_json::Value::Object(vars));
        let mut out = Bounded {
            buf: Vec::new(),
            cap: self.limits.output_bytes,
            overflowed: false,
        };
        match template.render_captured_to(ctx, &mut out) {
            Ok(_) => Ok(String::from_utf8_lossy(&out.buf).into_owned()),
            Err(_) if out.overflowed => Err(RenderError::Budget(format!(
                "the prompt is longer than {} bytes",
                self.limits.output_bytes
            ))),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// A template value from JSON (objects keep their key order, as Python dicts do).
pub fn to_value(json: &serde_json::Value) -> Value {
    Value::from(Serde(json))
}

/// The rendered prompt, refusing to grow past `cap` bytes.
struct Bounded {
    buf: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

impl io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.cap {
            self.overflowed = true;
            return Err(io::Error::other("output cap"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn raised_message(e: &Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    for _ in 0..16 {
        let s = source?;
        if let Some(r) = s.downcast_ref::<Raised>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

fn classify(e: &Error) -> RenderError {
    if let Some(message) = raised_message(e) {
        return RenderError::Raised {
            message,
            line: e.line(),
        };
    }
    let detail = e.detail().unwrap_or_default();
    if e.kind() == ErrorKind::OutOfFuel {
        return RenderError::Budget("out of fuel (too many steps or too much data)".into());
    }
    if detail.contains("recursion limit") {
        return RenderError::Budget("recursion limit exceeded".into());
    }
    if detail.contains("range has too many elements") {
        return RenderError::Budget(detail.to_string());
    }
    failed(e)
}

fn failed(e: &Error) -> RenderError {
    let message = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    RenderError::Failed {
        message,
        line: e.line(),
    }
}

/// The fixed conversations every template is rendered with (`conversations.json`; the
/// reference script renders the same file with transformers), each with and without
/// the generation prompt.
pub fn standard_conversations() -> Vec<Conversation> {
    let parsed: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("conversations.json")).unwrap_or_default();
    let mut out = Vec::new();
    for c in &parsed {
        for add_generation_prompt in [true, false] {
            out.push(Conversation {
                name: c["name"].as_str().unwrap_or("?").to_string(),
                messages: c["messages"].clone(),
                tools: c.get("tools").cloned(),
                add_generation_prompt,
                variables: serde_json::Map::new(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, conv: &Conversation) -> Result<String, RenderError> {
        Renderer::new(source, LIMITS)?.render(conv, &SpecialTokens::default())
    }

    fn user() -> Conversation {
        standard_conversations().remove(0)
    }

    #[test]
    fn the_standard_set_parses() {
        let names: Vec<String> = standard_conversations()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names.len(), 8);
        assert_eq!(names[0], "user");
        assert_eq!(names[7], "tool-call");
    }

    #[test]
    fn renders_like_jinja2() {
        let conv = user();
        let out = render(
            "{% for m in messages %}<|{{ m.role }}|>\n  {{ m['content'].upper() }}\n{% endfor %}{{ none }} {{ true }} {{ [1, 'a'] }} {{ {'k': 'x<y'} | tojson }}|{{ '{\n'|indent(4, first=true) }}|{{ 'a\nb'|indent(2) }}",
            &conv,
        )
        .unwrap();
        assert_eq!(
            out,
            "<|user|>\n  HELLO, WHO ARE YOU?\nNone True [1, 'a'] {\"k\": \"x<y\"}|    {\n|a\n  b"
        );
    }

    #[test]
    fn generation_tags_render_their_body() {
        let out = render(
            "{% generation %}A{% endgeneration %}{%- generation -%} B {%- endgeneration -%}",
            &user(),
        )
        .unwrap();
        assert_eq!(out, "AB");
    }

    #[test]
    fn failures_are_classified() {
        let conv = user();
        assert!(matches!(
            render("{% if %}", &conv),
            Err(RenderError::Syntax { .. })
        ));
        assert_eq!(
            render("\n{{ raise_exception('no system role') }}", &conv),
            Err(RenderError::Raised {
                message: "no system role".into(),
                line: Some(2)
            })
        );
        assert!(matches!(
            render("{{ 'a' | nosuchfilter }}", &conv),
            Err(RenderError::Failed { .. })
        ));
    }

    #[test]
    fn loops_and_explosions_end_within_the_budget() {
        let conv = user();
        let start = std::time::Instant::now();
        for source in [
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "{% set s = namespace(v='ab') %}{% for i in range(64) %}{% set s.v = s.v ~ s.v %}{% endfor %}{{ s.v }}",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "{{ 'x' * 100000000 }}",
        ] {
            assert!(
                matches!(render(source, &conv), Err(RenderError::Budget(_))),
                "{source}: {:?}",
                render(source, &conv)
            );
        }
        assert!(start.elapsed().as_secs_f64() < 2.0, "{:?}", start.elapsed());
    }
}
