//! Every rule code gguf-gate can report: stable kebab-case names (the SARIF `ruleId`,
//! the JUnit testcase name, the `explain` argument), each with its family, default
//! severity, a one-line summary, an explanation and a fix hint. `docs/rules.md` is
//! generated from this table and a test keeps it in step.

use serde::Serialize;

/// How serious a failed check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One rule's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    pub code: &'static str,
    pub family: &'static str,
    pub default_severity: Severity,
    pub summary: &'static str,
    pub explanation: &'static str,
    pub hint: &'static str,
}

const fn rule(
    code: &'static str,
    family: &'static str,
    default_severity: Severity,
    summary: &'static str,
    explanation: &'static str,
    hint: &'static str,
) -> RuleInfo {
    RuleInfo {
        code,
        family,
        default_severity,
        summary,
        explanation,
        hint,
    }
}

use Severity::{Error, Note, Warning};

pub const RULES: &[RuleInfo] = &[
    rule("metadata-required", "metadata", Error,
        "A metadata key the loader needs is missing.",
        "llama.cpp (and bitnet.cpp) read hyper-parameters and the vocabulary from GGUF metadata. A missing key makes the loader fail or, worse, fall back to a default that does not match the weights.",
        "Re-export the model with a converter that writes the key (gguf-gate export does), or add it with gguf-py's gguf-new-metadata."),
    rule("metadata-type", "metadata", Error,
        "A metadata key has the wrong value type.",
        "Loaders read keys with a fixed type (llama.cpp's `get_key` refuses a u64 where it expects u32); a wrong type is a load failure waiting to happen.",
        "Write the key with the type llama.cpp expects (see the preset with `gguf-gate init --preset llama --stdout`)."),
    rule("metadata-value", "metadata", Error,
        "A metadata value is not allowed, out of range or does not match its pattern.",
        "The policy pins allowed values, numeric ranges or a regular expression for the key.",
        "Fix the value in the converter, or widen the policy if the value is right."),
    rule("metadata-consistency", "metadata", Error,
        "Metadata disagrees with the tensors.",
        "Embedding length must equal token_embd's row width, block count the number of blk.N layers, head counts must divide the width, and the vocabulary size must equal token_embd's rows and the tokenizer's token count. A mismatch means the file was assembled from parts that do not belong together.",
        "Re-export from the original checkpoint; check config.json against the weights."),
    rule("norm-dtype", "norms", Error,
        "A norm weight is stored in a quantized type.",
        "Norm weights are tiny and scale every activation; quantizing them (a classic conversion bug) silently degrades or destroys the model. They must stay F32/F16/BF16.",
        "Quantize with a tool that keeps 1-D tensors float (gguf-gate quantize, llama-quantize)."),
    rule("norm-rms", "norms", Error,
        "A norm weight's RMS is outside its envelope.",
        "Trained norm weights have a characteristic scale (SmolLM2's attn_norm 0.04-0.42, BitNet's 0.01-0.03). A zeroed, rescaled or re-initialised norm falls outside the envelope.",
        "Compare with the source checkpoint; a factor of 1000 points at a unit or scale bug in conversion."),
    rule("proj-rms", "projections", Error,
        "A projection matrix's RMS is outside its bounds.",
        "Attention and FFN projections of a trained model have RMS values in a narrow band; a matrix scaled by a conversion bug stands out.",
        "Check the conversion of this tensor (scales, permutation, dtype)."),
    rule("proj-rms-spread", "projections", Error,
        "Projection RMS values spread too far within a layer or across layers.",
        "Healthy models keep max/min RMS within a small factor (SmolLM2: 8.5x). A much larger spread means one matrix was scaled or scrambled.",
        "Find the outlier in `gguf-gate stats --filter 'blk.*'` and re-convert it."),
    rule("tensor-finite", "tensors", Error,
        "A tensor contains NaN or infinity.",
        "Any NaN or Inf in a weight propagates to every output: the model produces garbage.",
        "Re-convert from the source; check for overflow when casting to F16."),
    rule("tensor-zero", "tensors", Error,
        "A tensor is entirely zero.",
        "An all-zero weight matrix is a tensor that was never filled (a failed copy or a missing shard).",
        "Re-export; check that every shard of the checkpoint was read."),
    rule("tensor-constant", "tensors", Error,
        "Every value of a tensor is the same.",
        "A constant tensor (e.g. a norm of all ones) was initialised and never trained or never copied.",
        "Check that the trained weights, not the initial ones, were exported."),
    rule("tensor-dtype", "tensors", Error,
        "A tensor's dtype is not allowed for its pattern.",
        "The policy restricts which ggml types each tensor may use.",
        "Re-quantize with the intended types, or adjust the policy's tensors.dtypes."),
    rule("tensor-count", "tensors", Error,
        "The file does not have the expected number of tensors.",
        "A missing or extra tensor means a layer was dropped or duplicated.",
        "Compare `gguf-gate inspect` with the source checkpoint."),
    rule("tensor-undecodable", "tensors", Warning,
        "A tensor's type cannot be decoded, so its values were not checked.",
        "gguf-gate decodes every common ggml type; some (IQ1/IQ2/IQ3 families, NVFP4) are not decoded, so value rules skip those tensors.",
        "Waive the tensor, or gate a copy in a decodable type."),
    rule("fingerprint-match", "fingerprint", Error,
        "The file's fingerprint is not one the policy pins.",
        "A release gate pins the exact bytes it approved; any other file — even one that would pass every other rule — is not the approved artifact.",
        "Gate the approved file, or update the pinned fingerprint after re-approval."),
    rule("probe-text", "probe", Error,
        "The probe's continuation is not language.",
        "The model's greedy continuation of a probe prompt is empty, only punctuation, mostly non-words, or a degenerate loop: the symptom of broken weights or a mismatched tokenizer.",
        "Run `gguf-gate run MODEL --prompt ...` and compare with the source model."),
    rule("probe-expect", "probe", Error,
        "The probe's continuation misses an expected answer.",
        "A probe prompt pins text (`expect_contains`) or a pattern (`expect_regex`) the continuation must contain.",
        "Compare with the source model's answer; a changed answer means changed weights."),
    rule("probe-baseline", "probe", Error,
        "The probe's tokens drifted from the recorded baseline.",
        "The policy points at token ids recorded with `check --record-probe`; any difference means the model's computation changed.",
        "If the change is intended, record a new baseline."),
    rule("probe-unsupported-arch", "probe", Error,
        "The probe cannot run this architecture.",
        "gguf-gate's inference engine runs llama-family and bitnet-b1.58 models; for anything else the probe cannot vouch for the model.",
        "Disable the probe for this model (probe.enabled: false) or waive the rule."),
    rule("probe-skipped", "probe", Note,
        "The probe did not run.",
        "The probe was disabled, or the engine is not available in this build; nothing was checked.",
        "Enable the probe in the policy."),
    rule("policy-generic", "policy", Note,
        "No preset exists for this architecture; only generic rules ran.",
        "The default policy chooses a preset by general.architecture; for an unknown architecture only dtype, finite, zero, constant and structure rules apply.",
        "Write a policy with the metadata and tensor rules your architecture needs."),
    rule("policy-waiver-expired", "policy", Error,
        "A waiver has expired.",
        "Waivers carry an expiry date so that accepted exceptions are revisited.",
        "Fix the underlying problem, or renew the waiver with a new date and reason."),
];

/// The rule with this code.
pub fn lookup(code: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.code == code)
}

/// The rule with this code; for codes from the table itself.
pub fn info(code: &str) -> &'static RuleInfo {
    lookup(code).unwrap_or(&RULES[0])
}

/// `docs/rules.md`, generated.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Rules\n\n<!-- Generated by `gguf-gate rules --format markdown`; a test keeps it in step. -->\n\n\
         Every rule code gguf-gate reports. Codes are stable: they are the SARIF `ruleId`, the JUnit\n\
         testcase name and the argument of `gguf-gate explain`. Severities can be changed per rule in a\n\
         policy (`severity: {code: error|warning|off}`).\n\n\
         | code | family | default | checks |\n|---|---|---|---|\n",
    );
    for r in RULES {
        out.push_str(&format!(
            "| [`{}`](#{}) | {} | {} | {} |\n",
            r.code,
            r.code,
            r.family,
            r.default_severity.name(),
            r.summary
        ));
    }
    for r in RULES {
        out.push_str(&format!(
            "\n## {}\n\n{}\n\n{}\n\n**Fix:** {}\n",
            r.code, r.summary, r.explanation, r.hint
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.code), "duplicate code {}", r.code);
            assert!(
                r.code.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{} is not kebab-case",
                r.code
            );
            assert!(!r.summary.is_empty() && !r.explanation.is_empty() && !r.hint.is_empty());
        }
    }
}
