//! `gguf-gate template`: render a chat template with a conversation and print the prompt
//! (what a model "sees" when it talks weird), list the templates a file holds, or run the
//! template rules on a model or a template file (`--check`). The library loads, renders
//! and judges; this formats. The prompt is model text: hidden characters are escaped
//! unless `--raw`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::{emit, pretty_json, Outcome};
use crate::cli::{Format, TemplateArgs};
use gguf_gate::escape::{visible, visible_text};
use gguf_gate::policy;
use gguf_gate::rules::template::{check_subject, sha256_hex, Subject};
use gguf_gate::rules::{self, Severity, Sink};
use gguf_gate::template::load::{load, Loaded};
use gguf_gate::template::{standard_conversations, Conversation, Renderer, LIMITS};

/// Largest --messages file read.
const MAX_MESSAGES_BYTES: u64 = 16 << 20;

pub fn run(args: TemplateArgs) -> Result<Outcome> {
    let loaded = load(&args.model).with_context(|| args.model.display().to_string())?;
    if args.list {
        return list(&loaded, args.format);
    }
    if args.check {
        return check(&loaded, &args.model);
    }
    let found = &loaded.found;
    let Some(stored) = found.by_name(args.name.as_deref()) else {
        let names: Vec<String> = found
            .templates
            .iter()
            .map(|t| t.name.clone().unwrap_or_else(|| "default".into()))
            .collect();
        bail!(
            "{}: no template {:?} (the file has: {})",
            args.model.display(),
            args.name.as_deref().unwrap_or("default"),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    let mut conversation = match &args.messages {
        Some(path) => read_conversation(path)?,
        None => standard_conversations()
            .into_iter()
            .find(|c| c.name == "system-user")
            .context("the standard conversations are missing")?,
    };
    if args.no_generation_prompt {
        conversation.add_generation_prompt = false;
    }
    let renderer = Renderer::new(&stored.text, LIMITS)
        .map_err(|e| anyhow::anyhow!("{}: {}", stored.key, visible(&e.to_string())))?;
    let prompt = renderer
        .render(&conversation, &loaded.tokens)
        .map_err(|e| anyhow::anyhow!("{}: {}", stored.key, visible(&e.to_string())))?;
    let text = match args.format {
        Format::Json => pretty_json(&json!({"template": stored.key, "prompt": prompt}))?,
        Format::Text if args.raw => prompt,
        Format::Text => {
            let mut shown = visible_text(&prompt).into_owned();
            if !shown.ends_with('\n') {
                shown.push('\n');
            }
            shown
        }
    };
    emit(None, &text)?;
    Ok(Outcome::Pass)
}

/// A conversation file: an array of messages, or an object with `messages` and options.
fn read_conversation(path: &Path) -> Result<Conversation> {
    let text = gguf_gate::input::read_text_bounded(path, MAX_MESSAGES_BYTES, "messages")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| path.display().to_string())?;
    let (messages, object) = match &json {
        serde_json::Value::Array(_) => (json.clone(), None),
        serde_json::Value::Object(o) => (o.get("messages").cloned().unwrap_or_default(), Some(o)),
        _ => bail!(
            "{}: expected an array of messages or an object",
            path.display()
        ),
    };
    if !messages.is_array() {
        bail!("{}: `messages` must be an array", path.display());
    }
    let field = |k: &str| object.and_then(|o| o.get(k));
    Ok(Conversation {
        name: path.display().to_string(),
        messages,
        tools: field("tools").filter(|t| !t.is_null()).cloned(),
        add_generation_prompt: field("add_generation_prompt")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true),
        variables: field("variables")
            .and_then(serde_json::Value::as_object)
            .cloned()
            .unwrap_or_default(),
    })
}

fn list(loaded: &Loaded, format: Format) -> Result<Outcome> {
    let rows: Vec<serde_json::Value> = loaded
        .found
        .templates
        .iter()
        .map(|t| {
            json!({
                "key": t.key,
                "name": t.name.as_deref().unwrap_or("default"),
                "bytes": t.text.len(),
                "sha256": sha256_hex(&t.text),
                "stored_as_array": t.from_array,
            })
        })
        .collect();
    let text = match format {
        Format::Json => pretty_json(&json!({"templates": rows}))?,
        Format::Text => {
            let mut out = String::new();
            for t in &loaded.found.templates {
                out.push_str(&format!(
                    "{}\t{} bytes\tsha256 {}{}\n",
                    visible(&t.key),
                    t.text.len(),
                    sha256_hex(&t.text),
                    if t.from_array {
                        "\t(stored as an array of strings)"
                    } else {
                        ""
                    }
                ));
            }
            for p in &loaded.found.problems {
                out.push_str(&format!("{}\t{}\n", visible(&p.key), visible(&p.problem)));
            }
            if out.is_empty() {
                out.push_str("no chat template\n");
            }
            out
        }
    };
    emit(None, &text)?;
    Ok(Outcome::Pass)
}

/// The template rules with the default policy for the file's architecture.
fn check(loaded: &Loaded, path: &Path) -> Result<Outcome> {
    let arch = loaded.header.as_ref().and_then(|h| h.architecture());
    let policy = policy::load(None, arch, false)?;
    let subject = Subject {
        found: loaded.found.clone(),
        tokens: loaded.tokens.clone(),
        adds_bos: loaded.adds_bos,
        header: loaded.header.as_ref(),
    };
    let fingerprint =
        gguf_gate::fingerprint::Fingerprint::of_bytes(path.as_os_str().as_encoded_bytes());
    let mut sink = Sink::new(&policy, fingerprint, rules::today());
    check_subject(&subject, &policy.chat_template, &mut sink);
    let mut out = String::new();
    let failed: Vec<_> = sink.findings.iter().filter(|f| !f.passed).collect();
    for f in &failed {
        out.push_str(&format!(
            "{} [{}] {}: {}\n",
            f.severity.name(),
            f.rule,
            visible(&f.subject),
            visible(&f.message)
        ));
        if let Some(at) = &f.excerpt {
            out.push_str(&format!("    at {at}\n"));
        }
    }
    let errors = failed
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    out.push_str(&format!(
        "{}: {} template(s), {} checks, {} failed ({} at error level)\n",
        visible(&path.display().to_string()),
        loaded.found.templates.len(),
        sink.findings.len(),
        failed.len(),
        errors
    ));
    emit(None, &out)?;
    Ok(if errors > 0 {
        Outcome::Fail
    } else {
        Outcome::Pass
    })
}
