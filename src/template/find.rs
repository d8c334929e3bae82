//! Every chat template a GGUF file holds, wherever it hides: `tokenizer.chat_template`
//! (the default), every `tokenizer.chat_template.<name>` (named variants such as
//! `tool_use` or `rag`, which runtimes select by name), and the names listed in
//! `tokenizer.chat_templates`. A scanner that reads only the default key misses a payload
//! in a variant. A template key holding anything but a string is a defect of its own —
//! and one storage trick: an array of strings, which llama.cpp cannot load as a template
//! (it falls back to a built-in one) and which blinded at least one scanner. Such an array
//! is reported *and* its joined text is analysed like any template.

use crate::gguf::{Array, Header, Value};

/// The default template's key.
pub const DEFAULT_KEY: &str = "tokenizer.chat_template";
/// The list of named variants.
pub const NAMES_KEY: &str = "tokenizer.chat_templates";

/// One template found in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The metadata key it is stored under (the finding's subject).
    pub key: String,
    /// `None` for the default template, else the variant's name.
    pub name: Option<String>,
    /// The template text (an array's strings joined without separator).
    pub text: String,
    /// It was stored as an array of strings, not a string.
    pub from_array: bool,
}

/// A template key that cannot be a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misstored {
    pub key: String,
    pub problem: String,
}

/// What the file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub templates: Vec<Stored>,
    pub problems: Vec<Misstored>,
}

impl Found {
    /// The default template, when there is one.
    pub fn default_template(&self) -> Option<&Stored> {
        self.templates.iter().find(|t| t.name.is_none())
    }

    /// A template by name (`None` or `"default"` is the default one).
    pub fn by_name(&self, name: Option<&str>) -> Option<&Stored> {
        match name {
            None | Some("default") => self.default_template(),
            Some(n) => self.templates.iter().find(|t| t.name.as_deref() == Some(n)),
        }
    }
}

/// Find every template in `header`.
pub fn find(header: &Header) -> Found {
    let mut found = Found::default();
    for entry in &header.metadata {
        let name = if entry.key == DEFAULT_KEY {
            None
        } else if let Some(n) = entry.key.strip_prefix("tokenizer.chat_template.") {
            Some(n.to_string())
        } else {
            continue;
        };
        match &entry.value {
            Value::String(text) => found.templates.push(Stored {
                key: entry.key.clone(),
                name,
                text: text.clone(),
                from_array: false,
            }),
            Value::Array(Array::String(parts)) => {
                found.problems.push(Misstored {
                    key: entry.key.clone(),
                    problem: format!(
                        "stored as an array of {} strings, not a string: runtimes cannot load it (llama.cpp falls back to a built-in template) and scanners that read strings do not see it",
                        parts.len()
                    ),
                });
                found.templates.push(Stored {
                    key: entry.key.clone(),
                    name,
                    text: parts.concat(),
                    from_array: true,
                });
            }
            other => found.problems.push(Misstored {
                key: entry.key.clone(),
                problem: format!("has type {}, not string", other.type_name()),
            }),
        }
    }
    match header.get(NAMES_KEY) {
        None => {}
        Some(Value::Array(Array::String(names))) => {
            for n in names {
                let key = format!("{DEFAULT_KEY}.{n}");
                if header.get(&key).is_none() {
                    found.problems.push(Misstored {
                        key: NAMES_KEY.into(),
                        problem: format!(
                            "lists the template {n:?} but the file has no key `{key}`"
                        ),
                    });
                }
            }
        }
        Some(other) => found.problems.push(Misstored {
            key: NAMES_KEY.into(),
            problem: format!("has type {}, not array[string]", other.type_name()),
        }),
    }
    found
}
