//! The probe rule family: the greedy continuation of each policy prompt must read as
//! language (`probe-text`: not blank, enough words, mostly English words, no degenerate
//! loop), contain what the prompt expects (`probe-expect`), and match a recorded
//! baseline when the policy names one (`probe-baseline`). A model the engine cannot run —
//! an architecture, a weight type or a RoPE scaling it does not implement — is
//! `probe-unsupported-arch` (a warning by default, an error in strict mode: never a
//! silent pass, never a wrong answer); a disabled probe is the note `probe-skipped`.

use serde::Serialize;

use super::finding::{Check, Sink};
use super::{num, Rule};
use crate::infer::InferError;
use crate::policy::{Policy, Prompt};
use crate::probe::{measure, Baseline, Continuation, ProbeError, TextMeasures};

/// The probe's results, for the reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProbeReport {
    pub ran: bool,
    pub note: String,
    pub prompts: Vec<ProbeResult>,
}

/// One prompt's continuation and its measures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeResult {
    pub prompt: String,
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub text: String,
    pub words: usize,
    pub word_share: f64,
    pub prompt_ms: f64,
    pub decode_tok_s: f64,
    /// `probe.max_seconds` cut the continuation short.
    pub stopped_by_budget: bool,
}

/// Words a continuation needs before its word share means anything.
const MIN_WORDS: usize = 3;

/// Judge the probe run. `run` is `None` when the probe was disabled.
pub fn check(
    policy: &Policy,
    run: Option<&Result<Vec<Continuation>, ProbeError>>,
    baseline: Option<&Result<Baseline, String>>,
    sink: &mut Sink<'_>,
) -> ProbeReport {
    let continuations = match run {
        None => {
            let note = if policy.probe.enabled {
                "the probe was skipped (--no-probe)"
            } else {
                "the probe is disabled by the policy"
            };
            return not_run(policy, sink, Rule::ProbeSkipped, note.to_string());
        }
        Some(Err(e)) => {
            let (rule, note) = why_not_run(e);
            return not_run(policy, sink, rule, note);
        }
        Some(Ok(c)) => c,
    };
    let mut prompts = Vec::new();
    for (c, prompt) in continuations.iter().zip(&policy.probe.prompts) {
        let m = measure(&c.text, &c.tokens);
        let subject = subject_of(&c.prompt);
        check_text(policy, prompt, c, &m, &subject, sink);
        check_expected(prompt, c, &subject, sink);
        prompts.push(ProbeResult {
            prompt: c.prompt.clone(),
            prompt_tokens: c.prompt_tokens.clone(),
            tokens: c.tokens.clone(),
            text: c.text.clone(),
            words: m.words,
            word_share: m.word_share,
            prompt_ms: c.prompt_ms,
            decode_tok_s: c.decode_tok_s,
            stopped_by_budget: c.stopped_by_budget,
        });
    }
    if let Some(b) = baseline {
        check_baseline(policy, continuations, b, sink);
    }
    let cut = prompts.iter().filter(|p| p.stopped_by_budget).count();
    let budget = if cut > 0 {
        format!(
            "; {cut} cut short by probe.max_seconds ({} s)",
            num(policy.probe.max_seconds)
        )
    } else {
        String::new()
    };
    ProbeReport {
        ran: true,
        note: format!("{} prompt(s) continued greedily{budget}", prompts.len()),
        prompts,
    }
}

/// The rule and message for a probe that could not run: what the engine does not
/// implement is `probe-unsupported-arch`; a model it should run but cannot (a missing
/// tensor, a wrong shape) is broken, and fails `probe-text`.
fn why_not_run(e: &ProbeError) -> (Rule, String) {
    let supported = crate::infer::Arch::names();
    match e {
        ProbeError::UnsupportedArchitecture(arch) => (
            Rule::ProbeUnsupportedArch,
            format!(
                "the probe cannot run architecture {arch:?} (it runs {supported}): the model's output is unverified"
            ),
        ),
        ProbeError::Infer(
            inner @ (InferError::Unsupported { .. } | InferError::UnsupportedType { .. }),
        ) => (
            Rule::ProbeUnsupportedArch,
            format!("the probe cannot run this model: {inner}"),
        ),
        other => (Rule::ProbeText, format!("the probe could not run: {other}")),
    }
}

/// The probe did not run: one finding, and a report that says why.
fn not_run(policy: &Policy, sink: &mut Sink<'_>, rule: Rule, note: String) -> ProbeReport {
    sink.push(Check {
        rule,
        subject: "(probe)",
        passed: false,
        message: note.clone(),
        value: None,
        bound: None,
        loc: Some(policy.probe.loc.clone()),
    });
    ProbeReport {
        ran: false,
        note,
        prompts: Vec::new(),
    }
}

/// `probe-text`: blank, looping, too few words or too few English words fail.
fn check_text(
    policy: &Policy,
    prompt: &Prompt,
    c: &Continuation,
    m: &TextMeasures,
    subject: &str,
    sink: &mut Sink<'_>,
) {
    let problem = if m.blank {
        Some("the continuation is empty or only whitespace and punctuation".to_string())
    } else if let Some((period, reps)) = m.loop_at_end {
        Some(format!(
            "the continuation ends in a loop: a {period}-token sequence repeated {reps} times"
        ))
    } else if m.words < MIN_WORDS {
        Some(format!(
            "only {} word(s) in {} tokens",
            m.words,
            c.tokens.len()
        ))
    } else if m.word_share < policy.probe.min_word_share {
        Some(format!(
            "only {} of {} words are English ({}%)",
            m.english_words,
            m.words,
            num(100.0 * m.word_share)
        ))
    } else {
        None
    };
    let budget = if c.stopped_by_budget {
        format!(
            " (cut short after {} tokens by probe.max_seconds = {} s)",
            c.tokens.len(),
            num(policy.probe.max_seconds)
        )
    } else {
        String::new()
    };
    sink.push(Check {
        rule: Rule::ProbeText,
        subject,
        passed: problem.is_none(),
        message: match &problem {
            Some(p) => format!("{p}: {:?}{budget}", c.text),
            None => format!("{:?}{budget}", c.text),
        },
        value: Some(format!(
            "{} words, {}% English",
            m.words,
            num(100.0 * m.word_share)
        )),
        bound: Some(format!(
            ">= {MIN_WORDS} words, >= {}% English, no loop",
            num(100.0 * policy.probe.min_word_share)
        )),
        loc: Some(prompt.loc.clone()),
    });
}

/// `probe-expect`: the prompt's expected substrings and pattern.
fn check_expected(prompt: &Prompt, c: &Continuation, subject: &str, sink: &mut Sink<'_>) {
    let mut expect = |ok: bool, what: String, bound: String| {
        sink.push(Check {
            rule: Rule::ProbeExpect,
            subject,
            passed: ok,
            message: format!("the continuation {what}: {:?}", c.text),
            value: None,
            bound: Some(bound),
            loc: Some(prompt.loc.clone()),
        });
    };
    for expected in &prompt.expect_contains {
        let ok = c.text.contains(expected.as_str());
        let verb = if ok { "contains" } else { "does not contain" };
        expect(
            ok,
            format!("{verb} {expected:?}"),
            format!("contains {expected:?}"),
        );
    }
    if let Some(re) = &prompt.expect_regex {
        let ok = re.is_match(&c.text);
        let verb = if ok { "matches" } else { "does not match" };
        expect(
            ok,
            format!("{verb} /{}/", re.as_str()),
            format!("/{}/", re.as_str()),
        );
    }
}

/// `probe-baseline`: every prompt's tokens equal the recorded ones.
fn check_baseline(
    policy: &Policy,
    continuations: &[Continuation],
    baseline: &Result<Baseline, String>,
    sink: &mut Sink<'_>,
) {
    let loc = Some(policy.probe.loc.clone());
    let b = match baseline {
        Ok(b) => b,
        Err(e) => {
            sink.push(Check {
                rule: Rule::ProbeBaseline,
                subject: "(probe)",
                passed: false,
                message: format!("the baseline cannot be read: {e}"),
                value: None,
                bound: None,
                loc,
            });
            return;
        }
    };
    for c in continuations {
        let recorded = b.prompts.iter().find(|p| p.text == c.prompt);
        let (ok, message) = match recorded {
            None => (
                false,
                "the baseline has no tokens for this prompt".to_string(),
            ),
            Some(r) if r.tokens == c.tokens => (
                true,
                format!("{} tokens equal the baseline", c.tokens.len()),
            ),
            // Cut by the time budget: the tokens it did produce are what can be compared.
            Some(r) if c.stopped_by_budget && r.tokens.starts_with(&c.tokens) => (
                true,
                format!(
                    "{} tokens (cut by probe.max_seconds) equal the baseline's first {}",
                    c.tokens.len(),
                    c.tokens.len()
                ),
            ),
            Some(r) => {
                let at = r
                    .tokens
                    .iter()
                    .zip(&c.tokens)
                    .position(|(a, b)| a != b)
                    .unwrap_or(r.tokens.len().min(c.tokens.len()));
                (
                    false,
                    format!(
                        "drift from the baseline at token {at}: recorded {:?}, got {:?}",
                        r.tokens.get(at),
                        c.tokens.get(at)
                    ),
                )
            }
        };
        sink.push(Check {
            rule: Rule::ProbeBaseline,
            subject: &subject_of(&c.prompt),
            passed: ok,
            message,
            value: None,
            bound: None,
            loc: loc.clone(),
        });
    }
}

/// A finding's subject for a prompt: the prompt text, shortened.
fn subject_of(prompt: &str) -> String {
    let short: String = prompt.chars().take(48).collect();
    if short.len() < prompt.len() {
        format!("prompt \"{short}…\"")
    } else {
        format!("prompt \"{short}\"")
    }
}
