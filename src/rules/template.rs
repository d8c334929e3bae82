//! The `template-*` rules: every chat template in the file (`template::find`) is checked
//! for how it is stored, parsed and scanned for what it would do in a Python runtime
//! (`template::scan`), read for hidden characters and payloads, and rendered with the
//! standard conversations and the policy's own (`template::engine`) — then judged: does
//! it render, raise, loop, emit nothing, ignore the generation prompt, emit special tokens
//! the vocabulary lacks, double BOS. Every finding's subject is the template's metadata
//! key (so waivers and SARIF regions address it) and, where there is one, it carries the
//! line:column and excerpt inside the template. Templates whose SHA-256 the policy
//! allow-lists skip the heuristics (static, behavioural, text) but are still rendered.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::finding::{Check, Excerpt, Sink};
use super::Context;
use crate::gguf::Header;
use crate::policy::{Loc, PolicyConversation, TemplatePolicy};
use crate::registry::Rule;
use crate::template::{
    self, engine, text, Conversation, Found, RenderError, Renderer, Scan, SpecialTokens, Stored,
    LIMITS,
};

/// What the template rules look at: the templates and what the runtime passes them.
pub struct Subject<'a> {
    pub found: Found,
    pub tokens: SpecialTokens,
    /// The tokenizer adds BOS itself.
    pub adds_bos: bool,
    /// The file's header, for the vocabulary (`None` for a template file on its own).
    pub header: Option<&'a Header>,
}

impl<'a> Subject<'a> {
    /// The templates of a GGUF file.
    pub fn of(header: &'a Header) -> Subject<'a> {
        Subject {
            found: template::find(header),
            tokens: template::special_tokens(header),
            adds_bos: template::adds_bos(header),
            header: Some(header),
        }
    }
}

pub fn check(ctx: &Context<'_>, sink: &mut Sink<'_>) {
    check_subject(&Subject::of(ctx.header), &ctx.policy.chat_template, sink);
}

/// The rules on any set of templates (a GGUF's, or a template file's for `template --check`).
pub fn check_subject(subject: &Subject<'_>, policy: &TemplatePolicy, sink: &mut Sink<'_>) {
    let default = subject.found.default_template();
    if policy.required {
        sink.push(Check {
            rule: Rule::TemplateMissing,
            subject: template::find::DEFAULT_KEY,
            passed: default.is_some(),
            message: if default.is_some() {
                "the file has a chat template".into()
            } else {
                "the policy requires a chat template and the file has none".into()
            },
            value: None,
            bound: None,
            loc: Some(policy.required_loc.clone()),
        });
    }
    for p in &subject.found.problems {
        sink.push(Check {
            rule: Rule::TemplateType,
            subject: &p.key,
            passed: false,
            message: format!("`{}` {}", p.key, p.problem),
            value: None,
            bound: Some("string".into()),
            loc: None,
        });
    }
    for t in &subject.found.templates {
        if !t.from_array {
            sink.push(Check {
                rule: Rule::TemplateType,
                subject: &t.key,
                passed: true,
                message: format!("`{}` is a string", t.key),
                value: None,
                bound: None,
                loc: None,
            });
        }
        One {
            subject,
            policy,
            template: t,
            sink: &mut *sink,
        }
        .run();
    }
}

/// `sha256` of a template, lower-case hex.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A failure to report: message and place in the template.
type Failure = (String, Option<Excerpt>);

/// The rules on one template.
struct One<'a, 'b, 's> {
    subject: &'a Subject<'a>,
    policy: &'a TemplatePolicy,
    template: &'a Stored,
    sink: &'b mut Sink<'s>,
}

impl One<'_, '_, '_> {
    fn excerpt(&self, offset: usize, len: usize) -> Excerpt {
        let (line, column) = text::line_col(&self.template.text, offset);
        Excerpt {
            line,
            column,
            text: text::excerpt(&self.template.text, offset, len, 120),
        }
    }

    fn line_excerpt(&self, line: Option<usize>) -> Option<Excerpt> {
        let line = line?;
        let start: usize = self
            .template
            .text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        let len = self.template.text[start.min(self.template.text.len())..]
            .find('\n')
            .unwrap_or(0);
        Some(self.excerpt(start, len))
    }

    /// One check per failure, or one passing check.
    fn verdict(&mut self, rule: Rule, failures: Vec<Failure>, pass: String, loc: Option<Loc>) {
        let key = self.template.key.as_str();
        if failures.is_empty() {
            self.sink.push(Check {
                rule,
                subject: key,
                passed: true,
                message: pass,
                value: None,
                bound: None,
                loc,
            });
            return;
        }
        for (message, excerpt) in failures {
            self.sink.push_at(
                Check {
                    rule,
                    subject: key,
                    passed: false,
                    message,
                    value: None,
                    bound: None,
                    loc: loc.clone(),
                },
                excerpt,
            );
        }
    }

    fn run(mut self) {
        let trusted = self
            .policy
            .allow_sha256
            .contains(&sha256_hex(&self.template.text));
        if self.template.name.is_none() {
            self.expected_file();
        }
        if !trusted {
            self.size();
        }
        let scan = match template::parse_and_scan(&self.template.text) {
            Ok(scan) => {
                self.verdict(
                    Rule::TemplateSyntax,
                    Vec::new(),
                    "the template parses".into(),
                    None,
                );
                scan
            }
            Err(e) => {
                if !trusted {
                    self.invisible(None);
                }
                let excerpt = match &e {
                    RenderError::Syntax {
                        offset: Some(o), ..
                    } => Some(self.excerpt(*o, 1)),
                    RenderError::Syntax { line, .. } => self.line_excerpt(*line),
                    _ => None,
                };
                self.verdict(
                    Rule::TemplateSyntax,
                    vec![(e.to_string(), excerpt)],
                    String::new(),
                    None,
                );
                return;
            }
        };
        if !trusted {
            self.invisible(Some(&scan));
            self.static_rules(&scan);
            self.links(&scan);
        }
        let Ok(renderer) = Renderer::new(&self.template.text, LIMITS) else {
            return;
        };
        self.standard_renders(&renderer, &scan);
        self.policy_conversations(&renderer);
    }

    fn size(&mut self) {
        let len = self.template.text.len() as u64;
        let max = self.policy.max_bytes;
        let failures = if len > max {
            vec![(
                format!("the template is {len} bytes, more than the {max} bytes real templates stay well under"),
                None,
            )]
        } else {
            Vec::new()
        };
        self.verdict(
            Rule::TemplateSize,
            failures,
            format!("{len} bytes (at most {max})"),
            Some(self.policy.max_bytes_loc.clone()).filter(|l| l.line > 0),
        );
    }

    /// Hidden characters in the source, or produced by escapes in its string literals.
    fn invisible(&mut self, scan: Option<&Scan>) {
        let mut failures = Vec::new();
        if let Some((at, c)) = text::first_hidden(&self.template.text) {
            let count = self
                .template
                .text
                .chars()
                .filter(|c| text::first_hidden(c.encode_utf8(&mut [0; 4])).is_some())
                .count();
            failures.push((
                format!(
                    "the template holds {count} hidden character(s), the first U+{:04X}",
                    c as u32
                ),
                Some(self.excerpt(at, c.len_utf8())),
            ));
        }
        for (offset, literal) in scan.map_or(&[][..], |s| s.literals.as_slice()) {
            if let Some((_, c)) = text::first_hidden(literal) {
                if !self.template.text.contains(c) {
                    failures.push((
                        format!(
                            "a string literal writes the hidden character U+{:04X} with an escape",
                            c as u32
                        ),
                        Some(self.excerpt(*offset, 1)),
                    ));
                    break;
                }
            }
        }
        self.verdict(
            Rule::TemplateInvisible,
            failures,
            "no invisible, zero-width or bidi characters".into(),
            None,
        );
    }

    fn expected_file(&mut self) {
        let Some(expected) = &self.policy.expected else {
            return;
        };
        let (actual, wanted) = (&self.template.text, &expected.text);
        let failures = if actual == wanted {
            Vec::new()
        } else {
            let at = actual
                .bytes()
                .zip(wanted.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(actual.len().min(wanted.len()));
            vec![(
                format!(
                    "the template differs from {} ({} bytes here, {} there) from the place shown",
                    expected.path.display(),
                    actual.len(),
                    wanted.len()
                ),
                Some(self.excerpt(at, 1)),
            )]
        };
        self.verdict(
            Rule::TemplateMismatch,
            failures,
            format!("the template equals {}", expected.path.display()),
            Some(expected.loc.clone()),
        );
    }

    /// The AST rules: one verdict per rule code.
    fn static_rules(&mut self, scan: &Scan) {
        let mut by_rule: BTreeMap<Rule, Vec<Failure>> = BTreeMap::new();
        for o in &scan.observations {
            let excerpt = self.excerpt(o.offset, o.len);
            by_rule
                .entry(o.rule)
                .or_default()
                .push((o.message.clone(), Some(excerpt)));
        }
        for (rule, pass) in [
            (Rule::TemplatePythonInternals, "no Python internals"),
            (
                Rule::TemplateComputedAttribute,
                "members are named literally",
            ),
            (
                Rule::TemplateObfuscatedName,
                "no names rebuilt from pieces or escapes",
            ),
            (Rule::TemplateCodeExecution, "no code-execution names"),
            (
                Rule::TemplateInclude,
                "self-contained (no include, import or extends)",
            ),
            (Rule::TemplateGadget, "no attributes of Jinja globals"),
            (
                Rule::TemplateHiddenInstruction,
                "no branch on message content emits text of its own",
            ),
            (
                Rule::TemplateTimeTrigger,
                "no branch on the date emits text",
            ),
        ] {
            let failures = by_rule.remove(&rule).unwrap_or_default();
            self.verdict(rule, failures, pass.into(), None);
        }
    }

    fn links(&mut self, scan: &Scan) {
        let mut failures = Vec::new();
        for (offset, literal) in &scan.literals {
            for p in text::payloads(literal) {
                failures.push((
                    format!("the template's text holds {}: {:?}", p.what, p.found),
                    Some(self.excerpt(*offset, 1)),
                ));
            }
        }
        failures.dedup_by(|a, b| a.0 == b.0);
        self.verdict(
            Rule::TemplateLink,
            failures,
            "no links, IP addresses or encoded blobs in its text".into(),
            None,
        );
    }

    fn describe(c: &Conversation) -> String {
        format!(
            "conversation `{}` (add_generation_prompt={})",
            c.name, c.add_generation_prompt
        )
    }

    /// Render the standard conversations and judge the results.
    fn standard_renders(&mut self, renderer: &Renderer, scan: &Scan) {
        let mut results: Vec<(Conversation, Result<String, RenderError>)> = Vec::new();
        for conv in engine::standard_conversations() {
            let result = renderer.render(&conv, &self.subject.tokens);
            let exhausted = matches!(result, Err(RenderError::Budget(_)));
            results.push((conv, result));
            if exhausted {
                // One budget failure is the finding; rendering on would only burn time.
                break;
            }
        }
        let mut by_rule: BTreeMap<Rule, Vec<Failure>> = BTreeMap::new();
        for (conv, result) in &results {
            let (rule, message, line) = match result {
                Ok(prompt) if prompt.trim().is_empty() => (
                    Rule::TemplateEmpty,
                    format!("{}: the prompt is empty", Self::describe(conv)),
                    None,
                ),
                Ok(_) => continue,
                Err(RenderError::Raised { message, line }) => (
                    if conv.name == "user" {
                        Rule::TemplateRaises
                    } else {
                        Rule::TemplateRefuses
                    },
                    format!(
                        "conversation `{}`: raise_exception({:?})",
                        conv.name,
                        message.chars().take(200).collect::<String>()
                    ),
                    *line,
                ),
                Err(RenderError::Budget(m)) => (
                    Rule::TemplateBudget,
                    format!("{}: {m}", Self::describe(conv)),
                    None,
                ),
                Err(RenderError::Failed { message, line }) => (
                    Rule::TemplateRenderError,
                    format!("{}: {message}", Self::describe(conv)),
                    *line,
                ),
                Err(e @ RenderError::Syntax { .. }) => {
                    (Rule::TemplateRenderError, e.to_string(), None)
                }
            };
            let excerpt = self.line_excerpt(line);
            let list = by_rule.entry(rule).or_default();
            // The same refusal with and without the generation prompt is one finding.
            if !list.iter().any(|(m, _)| *m == message) {
                list.push((message, excerpt));
            }
        }
        let n = results.len();
        for (rule, pass) in [
            (
                Rule::TemplateRenderError,
                format!("renders the {n} standard conversations"),
            ),
            (
                Rule::TemplateRaises,
                "renders a single user message".to_string(),
            ),
            (
                Rule::TemplateRefuses,
                "accepts every standard conversation".to_string(),
            ),
            (
                Rule::TemplateBudget,
                "renders within the budget".to_string(),
            ),
            (Rule::TemplateEmpty, "every prompt has text".to_string()),
        ] {
            let failures = by_rule.remove(&rule).unwrap_or_default();
            self.verdict(rule, failures, pass, None);
        }
        let prompts: Vec<(&Conversation, &str)> = results
            .iter()
            .filter_map(|(c, r)| r.as_ref().ok().map(|p| (c, p.as_str())))
            .collect();
        self.generation_prompt(&prompts, scan);
        self.special_tokens(&prompts);
        self.bos(&prompts);
    }

    fn generation_prompt(&mut self, prompts: &[(&Conversation, &str)], scan: &Scan) {
        if !scan.reads_generation_prompt {
            return;
        }
        let of = |on: bool| {
            prompts
                .iter()
                .find(|(c, _)| c.name == "user" && c.add_generation_prompt == on)
                .map(|(_, p)| *p)
        };
        let (Some(on), Some(off)) = (of(true), of(false)) else {
            return;
        };
        let failures = if on == off {
            vec![(
                "the template reads add_generation_prompt but renders the same prompt with it on and off".into(),
                None,
            )]
        } else {
            Vec::new()
        };
        let added = on.strip_prefix(off).unwrap_or(on);
        self.verdict(
            Rule::TemplateGenerationPrompt,
            failures,
            format!(
                "add_generation_prompt adds {:?}",
                added.chars().take(60).collect::<String>()
            ),
            None,
        );
    }

    fn special_tokens(&mut self, prompts: &[(&Conversation, &str)]) {
        let Some(header) = self.subject.header else {
            return;
        };
        let mut markers: Vec<&str> = prompts
            .iter()
            .flat_map(|(_, p)| text::special_markers(p))
            .collect();
        markers.sort_unstable();
        markers.dedup();
        let Some(types) = template::marker_types(header, &markers) else {
            return;
        };
        let mut failures = Vec::new();
        for (marker, ty) in markers.iter().zip(&types) {
            let problem = match ty {
                None => "is not in the vocabulary",
                Some(t) if *t == template::TOKEN_NORMAL => {
                    "is a normal token, not a control token (runtimes tokenize it as text)"
                }
                Some(_) => continue,
            };
            let at = self.template.text.find(marker);
            failures.push((
                format!("the template emits {marker:?}, which {problem}"),
                at.map(|o| self.excerpt(o, marker.len())),
            ));
        }
        self.verdict(
            Rule::TemplateSpecialToken,
            failures,
            format!(
                "the {} special-token marker(s) it emits are control tokens of the vocabulary",
                markers.len()
            ),
            None,
        );
    }

    fn bos(&mut self, prompts: &[(&Conversation, &str)]) {
        let Some(bos) = self.subject.tokens.bos.as_deref().filter(|b| !b.is_empty()) else {
            return;
        };
        if !self.subject.adds_bos {
            return;
        }
        let doubled = prompts.iter().any(|(_, p)| p.starts_with(bos));
        let failures = if doubled {
            vec![(
                format!("the prompt starts with BOS {bos:?} and the tokenizer adds BOS too (tokenizer.ggml.add_bos_token)"),
                None,
            )]
        } else {
            Vec::new()
        };
        self.verdict(
            Rule::TemplateBosDoubled,
            failures,
            "the template does not emit the BOS the tokenizer adds".into(),
            None,
        );
    }

    /// The policy's conversations for this template, with their expectations.
    fn policy_conversations(&mut self, renderer: &Renderer) {
        let name = self.template.name.as_deref();
        let mine: Vec<&PolicyConversation> = self
            .policy
            .conversations
            .iter()
            .filter(|c| match c.template.as_deref() {
                None | Some("default") => name.is_none(),
                Some(n) => name == Some(n),
            })
            .collect();
        for pc in mine {
            let conv = Conversation {
                name: pc.name.clone(),
                messages: pc.messages.clone(),
                tools: pc.tools.clone(),
                add_generation_prompt: pc.add_generation_prompt,
                variables: pc.variables.clone(),
            };
            let failures: Vec<Failure> = match renderer.render(&conv, &self.subject.tokens) {
                Err(e) => vec![(format!("conversation `{}`: {e}", pc.name), None)],
                Ok(prompt) => pc
                    .expect_contains
                    .iter()
                    .filter(|want| !prompt.contains(want.as_str()))
                    .map(|want| {
                        (
                            format!(
                                "conversation `{}`: the prompt does not contain {want:?}; it is {:?}",
                                pc.name,
                                prompt.chars().take(300).collect::<String>()
                            ),
                            None,
                        )
                    })
                    .collect(),
            };
            self.verdict(
                Rule::TemplateExpect,
                failures,
                format!("conversation `{}` renders as expected", pc.name),
                Some(pc.loc.clone()),
            );
        }
    }
}
