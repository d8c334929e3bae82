//! The probe rule family: the greedy continuation of each policy prompt must read as
//! language (`probe-text`: not blank, enough words, mostly English words, no degenerate
//! loop), contain what the prompt expects (`probe-expect`), and match a recorded
//! baseline when the policy names one (`probe-baseline`). An architecture the engine
//! cannot run is `probe-unsupported-arch` — never a silent pass; a disabled probe is the
//! note `probe-skipped`.

use serde::Serialize;

use super::finding::{Check, Sink};
use super::{num, Rule};
use crate::policy::Policy;
use crate::probe::{measure, Baseline, Continuation, ProbeError};

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
    let loc = Some(policy.probe.loc.clone());
    // The probe did not run: one finding, and a report that says why.
    let mut not_run = |rule: Rule, note: String| {
        sink.push(Check {
            rule,
            subject: "(probe)",
            passed: false,
            message: note.clone(),
            value: None,
            bound: None,
            loc: loc.clone(),
        });
        ProbeReport {
            ran: false,
            note,
            prompts: Vec::new(),
        }
    };
    let Some(run) = run else {
        let note = if policy.probe.enabled {
            "the probe was skipped (--no-probe)"
        } else {
            "the probe is disabled by the policy"
        };
        return not_run(Rule::ProbeSkipped, note.to_string());
    };
    let continuations = match run {
        Ok(c) => c,
        Err(e) => {
            let (rule, note) = match e {
                ProbeError::UnsupportedArchitecture(arch) => (
                    Rule::ProbeUnsupportedArch,
                    format!("the probe cannot run architecture {arch:?}: the model is unverified"),
                ),
                other => (Rule::ProbeText, format!("the probe could not run: {other}")),
            };
            return not_run(rule, note);
        }
    };

    let mut prompts = Vec::new();
    for (c, prompt) in continuations.iter().zip(&policy.probe.prompts) {
        let m = measure(&c.text, &c.tokens);
        let subject = subject_of(&c.prompt);
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
        sink.push(Check {
            rule: Rule::ProbeText,
            subject: &subject,
            passed: problem.is_none(),
            message: match &problem {
                Some(p) => format!("{p}: {:?}", c.text),
                None => format!("{:?}", c.text),
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
        for expected in &prompt.expect_contains {
            let ok = c.text.contains(expected.as_str());
            sink.push(Check {
                rule: Rule::ProbeExpect,
                subject: &subject,
                passed: ok,
                message: format!(
                    "the continuation {} {expected:?}: {:?}",
                    if ok { "contains" } else { "does not contain" },
                    c.text
                ),
                value: None,
                bound: Some(format!("contains {expected:?}")),
                loc: Some(prompt.loc.clone()),
            });
        }
        if let Some(re) = &prompt.expect_regex {
            let ok = re.is_match(&c.text);
            sink.push(Check {
                rule: Rule::ProbeExpect,
                subject: &subject,
                passed: ok,
                message: format!(
                    "the continuation {} /{}/: {:?}",
                    if ok { "matches" } else { "does not match" },
                    re.as_str(),
                    c.text
                ),
                value: None,
                bound: Some(format!("/{}/", re.as_str())),
                loc: Some(prompt.loc.clone()),
            });
        }
        prompts.push(ProbeResult {
            prompt: c.prompt.clone(),
            prompt_tokens: c.prompt_tokens.clone(),
            tokens: c.tokens.clone(),
            text: c.text.clone(),
            words: m.words,
            word_share: m.word_share,
            prompt_ms: c.prompt_ms,
            decode_tok_s: c.decode_tok_s,
        });
    }

    match baseline {
        None => {}
        Some(Err(e)) => sink.push(Check {
            rule: Rule::ProbeBaseline,
            subject: "(probe)",
            passed: false,
            message: format!("the baseline cannot be read: {e}"),
            value: None,
            bound: None,
            loc: loc.clone(),
        }),
        Some(Ok(b)) => {
            for c in continuations {
                let subject = subject_of(&c.prompt);
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
                    subject: &subject,
                    passed: ok,
                    message,
                    value: None,
                    bound: None,
                    loc: loc.clone(),
                });
            }
        }
    }
    ProbeReport {
        ran: true,
        note: format!("{} prompt(s) continued greedily", prompts.len()),
        prompts,
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
