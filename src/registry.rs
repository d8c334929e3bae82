//! Every rule code gguf-gate can report, as the [`Rule`] enum: stable kebab-case names
//! (the SARIF `ruleId`, the JUnit testcase name, the `explain` argument, the key of a
//! policy's severity override), each with its family, default severity, a one-line
//! summary, an explanation and a fix hint. A leaf: `policy` and `rules` both read it and
//! it reads nothing of theirs. `docs/rules.md` is generated from this table and a test
//! keeps it in step. An unknown code is a compile error in Rust and a validation error in
//! a policy — never a silent fallback.

use std::fmt;
use std::str::FromStr;

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

/// The family a rule belongs to: a JUnit testsuite, a SARIF tag, what `--strict` gates
/// when `export`/`quantize` write a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Metadata,
    Norms,
    Projections,
    Tensors,
    Fingerprint,
    Baseline,
    Probe,
    Quality,
    Template,
    Policy,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Metadata => "metadata",
            Family::Norms => "norms",
            Family::Projections => "projections",
            Family::Tensors => "tensors",
            Family::Fingerprint => "fingerprint",
            Family::Baseline => "baseline",
            Family::Probe => "probe",
            Family::Quality => "quality",
            Family::Template => "template",
            Family::Policy => "policy",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    pub rule: Rule,
    pub code: &'static str,
    pub family: Family,
    pub default_severity: Severity,
    pub summary: &'static str,
    pub explanation: &'static str,
    pub hint: &'static str,
}

/// Declares [`Rule`] and [`RULES`] from one table, so that a variant and its row cannot
/// drift apart.
macro_rules! rules {
    ($($variant:ident = $code:literal, $family:ident, $severity:ident,
        $summary:literal, $explanation:literal, $hint:literal;)*) => {
        /// A rule code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($variant,)*
        }

        /// Every rule, in the order of [`Rule`] (and of `docs/rules.md`).
        pub const RULES: &[RuleInfo] = &[
            $(RuleInfo {
                rule: Rule::$variant,
                code: $code,
                family: Family::$family,
                default_severity: Severity::$severity,
                summary: $summary,
                explanation: $explanation,
                hint: $hint,
            },)*
        ];
    };
}

rules! {
    MetadataRequired = "metadata-required", Metadata, Error,
        "A metadata key the loader needs is missing.",
        "llama.cpp (and bitnet.cpp) read hyper-parameters and the vocabulary from GGUF metadata. A missing key makes the loader fail or, worse, fall back to a default that does not match the weights.",
        "Re-export the model with a converter that writes the key (gguf-gate export does), or add it with gguf-py's gguf-new-metadata.";
    MetadataType = "metadata-type", Metadata, Error,
        "A metadata key has the wrong value type.",
        "Loaders read keys with a fixed type (llama.cpp's `get_key` refuses a u64 where it expects u32); a wrong type is a load failure waiting to happen.",
        "Write the key with the type llama.cpp expects (see the preset with `gguf-gate init --preset llama --stdout`).";
    MetadataValue = "metadata-value", Metadata, Error,
        "A metadata value is not allowed, out of range or does not match its pattern.",
        "The policy pins allowed values, numeric ranges or a regular expression for the key.",
        "Fix the value in the converter, or widen the policy if the value is right.";
    MetadataConsistency = "metadata-consistency", Metadata, Error,
        "Metadata disagrees with the tensors.",
        "Embedding length must equal token_embd's row width, block count the number of blk.N layers, head counts must divide the width, and the vocabulary size must equal token_embd's rows and the tokenizer's token count. A mismatch means the file was assembled from parts that do not belong together.",
        "Re-export from the original checkpoint; check config.json against the weights.";
    NameCharset = "name-charset", Metadata, Error,
        "A tensor name or metadata key holds a control, bidi or zero-width character.",
        "Names are written by whoever made the file. A newline in a name can start a line of its own in a log (in GitHub Actions, `::warning::` at the start of a line is a workflow command); a bidirectional override (U+202E) reverses what a reviewer reads; a zero-width space makes two different names look identical. No converter produces such names: the file was crafted or corrupted. gguf-gate escapes them in every output, and fails the file.",
        "Rename the tensor or key to plain text (gguf-py's gguf-new-metadata can rewrite keys), and find out how the name got there.";
    StringCharset = "string-charset", Metadata, Warning,
        "A metadata string value holds a bidi or zero-width character.",
        "Bidirectional controls and zero-width characters hide text from reviewers and from scanners that match on visible text (a license, a name, a URL that reads differently than it is). Chat templates are checked by their own rules; the vocabulary arrays are not checked (tokens may legitimately be such characters).",
        "Remove the character from the value, or waive the key if it is intended (a right-to-left language name).";
    NormDtype = "norm-dtype", Norms, Error,
        "A norm weight is stored in a quantized type.",
        "Norm weights are tiny and scale every activation; quantizing them (a classic conversion bug) silently degrades or destroys the model. They must stay F32/F16/BF16.",
        "Quantize with a tool that keeps 1-D tensors float (gguf-gate quantize, llama-quantize).";
    NormRms = "norm-rms", Norms, Error,
        "A norm weight's RMS is outside its envelope.",
        "Trained norm weights have a characteristic scale (SmolLM2's attn_norm 0.04-0.42, BitNet's 0.01-0.03). A zeroed, rescaled or re-initialised norm falls outside the envelope.",
        "Compare with the source checkpoint; a factor of 1000 points at a unit or scale bug in conversion.";
    ProjRms = "proj-rms", Projections, Error,
        "A projection matrix's RMS is outside its bounds.",
        "Attention and FFN projections of a trained model have RMS values in a narrow band; a matrix scaled by a conversion bug stands out.",
        "Check the conversion of this tensor (scales, permutation, dtype).";
    ProjRmsSpread = "proj-rms-spread", Projections, Error,
        "Projection RMS values spread too far within a layer or across layers.",
        "Healthy models keep max/min RMS within a small factor (SmolLM2: 8.5x). A much larger spread means one matrix was scaled or scrambled.",
        "Find the outlier in `gguf-gate stats --filter 'blk.*'` and re-convert it.";
    TensorFinite = "tensor-finite", Tensors, Error,
        "A tensor contains NaN or infinity.",
        "Any NaN or Inf in a weight propagates to every output: the model produces garbage.",
        "Re-convert from the source; check for overflow when casting to F16.";
    TensorZero = "tensor-zero", Tensors, Error,
        "A tensor is entirely zero.",
        "An all-zero weight matrix is a tensor that was never filled (a failed copy or a missing shard).",
        "Re-export; check that every shard of the checkpoint was read.";
    TensorConstant = "tensor-constant", Tensors, Error,
        "Every value of a tensor is the same.",
        "A constant tensor (e.g. a norm of all ones) was initialised and never trained or never copied.",
        "Check that the trained weights, not the initial ones, were exported.";
    TensorDtype = "tensor-dtype", Tensors, Error,
        "A tensor's dtype is not allowed for its pattern.",
        "The policy restricts which ggml types each tensor may use.",
        "Re-quantize with the intended types, or adjust the policy's tensors.dtypes.";
    TensorCount = "tensor-count", Tensors, Error,
        "The file does not have the expected number of tensors.",
        "A missing or extra tensor means a layer was dropped or duplicated.",
        "Compare `gguf-gate inspect` with the source checkpoint.";
    TensorUndecodable = "tensor-undecodable", Tensors, Warning,
        "A tensor's type cannot be decoded, so its values were not checked.",
        "gguf-gate decodes every common ggml type; some (IQ1/IQ2/IQ3 families, NVFP4) are not decoded, so value rules skip those tensors.",
        "Waive the tensor, or gate a copy in a decodable type.";
    FingerprintMatch = "fingerprint-match", Fingerprint, Error,
        "The file's fingerprint is not one the policy pins.",
        "A release gate pins the exact bytes it approved; any other file — even one that would pass every other rule — is not the approved artifact.",
        "Gate the approved file, or update the pinned fingerprint after re-approval.";
    BaselineTensors = "baseline-tensors", Baseline, Error,
        "A tensor was added, removed or reshaped since the baseline.",
        "The policy's `baseline.file` names the previous release. A tensor that appeared, disappeared or changed shape means a different architecture or a broken conversion, not a new release of the same model (`baseline.tensors_must_match`, default true when a baseline is set).",
        "Run `gguf-gate diff BASELINE MODEL` to see the change; if it is intended, record a new baseline.";
    BaselineKeys = "baseline-keys", Baseline, Error,
        "A metadata key the policy pins to the baseline changed.",
        "`baseline.keys_must_match` lists keys (globs) whose type and value must equal the previous release's: hyper-parameters, the vocabulary, special token ids. A changed key changes how a loader builds the model or tokenizes.",
        "Run `gguf-gate diff BASELINE MODEL --filter KEY`; fix the converter, or record a new baseline if the change is intended.";
    BaselineDtype = "baseline-dtype", Baseline, Error,
        "A tensor's dtype differs from the baseline's.",
        "With `baseline.dtypes_must_match: true` every tensor keeps the previous release's ggml type: a re-quantization or a converter default that changed is caught before release.",
        "Re-quantize with the baseline's types, or record a new baseline if the new types are intended.";
    BaselineDrift = "baseline-drift", Baseline, Error,
        "A tensor's values moved further from the baseline than allowed.",
        "`baseline.max_relative_change` bounds ‖new − old‖ / ‖old‖ of the dequantized values per tensor pattern. Against a baseline GGUF the measure is exact; against a recorded summary it is the relative change of the tensor's RMS, a lower bound (a change that keeps the RMS, such as a permutation, shows only as a different hash). A re-conversion should move weights by rounding error; a trained or scrambled weight moves by far more.",
        "Run `gguf-gate diff BASELINE MODEL` to see which tensors moved and by how much.";
    BaselineTemplate = "baseline-template", Baseline, Error,
        "A chat template differs from the baseline's.",
        "With `baseline.template_must_match: true` every `tokenizer.chat_template*` key must be the previous release's text, byte for byte: a changed template changes every prompt the model sees.",
        "Run `gguf-gate diff BASELINE MODEL` for a unified diff of the template; restore it, or record a new baseline.";
    ProbeText = "probe-text", Probe, Error,
        "The probe's continuation is not language.",
        "The model's greedy continuation of a probe prompt is empty, only punctuation, mostly non-words, or a degenerate loop: the symptom of broken weights or a mismatched tokenizer.",
        "Run `gguf-gate run MODEL --prompt ...` and compare with the source model.";
    ProbeExpect = "probe-expect", Probe, Error,
        "The probe's continuation misses an expected answer.",
        "A probe prompt pins text (`expect_contains`) or a pattern (`expect_regex`) the continuation must contain.",
        "Compare with the source model's answer; a changed answer means changed weights.";
    ProbeBaseline = "probe-baseline", Probe, Error,
        "The probe's tokens drifted from the recorded baseline.",
        "The policy points at token ids recorded with `check --record-probe`; any difference means the model's computation changed.",
        "If the change is intended, record a new baseline.";
    ProbeUnsupportedArch = "probe-unsupported-arch", Probe, Warning,
        "The probe cannot run this model.",
        "gguf-gate's inference engine runs llama, bitnet-b1.58, qwen2, qwen3, gemma3 and phi3 models with the weight types and RoPE variants llama.cpp uses for them. For anything else (another architecture, a weight type without a kernel, a RoPE scaling type it does not implement) the probe cannot vouch for the model. A warning by default — a gate that fails every model it does not know teaches users to turn it off — and an error in strict mode.",
        "Disable the probe for this model (probe.enabled: false), waive the rule, or gate a copy in a supported weight type.";
    ProbeSkipped = "probe-skipped", Probe, Note,
        "The probe did not run.",
        "The probe was disabled, or the engine is not available in this build; nothing was checked.",
        "Enable the probe in the policy.";
    QualityPerplexity = "quality-perplexity", Quality, Error,
        "The model's perplexity on the policy's text is above the bound.",
        "The model scores a text (teacher-forced, every position): perplexity is exp of its mean negative log-likelihood of each next token. A damaged model — a broken quantization, a scrambled projection — predicts text worse, though it may still write fluent sentences the probe accepts.",
        "Compare with the source model's perplexity (`gguf-gate score`); re-quantize or re-convert.";
    QualityKld = "quality-kld", Quality, Error,
        "The model's next-token distributions diverge too far from the base model's.",
        "At every position of the text, the KL divergence KL(base || model) of the base's next-token distribution (e.g. the F16 export) from the model's (e.g. its quantization) measures how much the quantization changed what the model believes — the number llama.cpp's `llama-perplexity --kl-divergence` reports. The mean and the 99th percentile are bounded.",
        "Use a higher-precision quantization for the damaged tensors, or find the one tensor that was damaged (`gguf-gate diff`, `gguf-gate stats`).";
    QualityTop1 = "quality-top1", Quality, Error,
        "Model and base agree on the most likely next token too rarely.",
        "The share of positions of the text where the model's most likely next token equals the base's. Greedy decoding follows the top token, so a low share means the model will write different text from its base.",
        "As for quality-kld: quantize less aggressively, or find the damaged tensor.";
    TemplateMissing = "template-missing", Template, Error,
        "The policy requires a chat template and the file has none.",
        "A chat model without `tokenizer.chat_template` is rendered with whatever format the runtime guesses (llama.cpp falls back to ChatML), which is rarely the format the model was trained on. Checked only when the policy says `chat_template: {required: true}`.",
        "Write the source model's template into the GGUF (convert_hf_to_gguf.py copies it from tokenizer_config.json; gguf-py's gguf-new-metadata can add it).";
    TemplateType = "template-type", Template, Error,
        "A chat template key does not hold a string.",
        "`tokenizer.chat_template`, `tokenizer.chat_template.<name>` must be strings and `tokenizer.chat_templates` an array of the names that exist. A template stored as an array of strings cannot be loaded by runtimes (llama.cpp falls back to a built-in template) and blinded at least one scanner; gguf-gate analyses its joined text anyway.",
        "Store the template as one string; list in tokenizer.chat_templates only names whose key exists.";
    TemplateSyntax = "template-syntax", Template, Error,
        "A chat template does not parse.",
        "The template is not valid Jinja as transformers and minijinja read it (trim_blocks, lstrip_blocks, loop controls). Every runtime will fail on the first request.",
        "Fix the template at the reported line and column; `gguf-gate template MODEL` renders it.";
    TemplateRenderError = "template-render-error", Template, Error,
        "A chat template fails while rendering a standard conversation.",
        "The template parses but fails on a conversation every runtime sends (user only, system + user, multi-turn, a tool call and its result): an unknown filter or method, a value of the wrong type, arithmetic on an undefined value.",
        "Render it with `gguf-gate template MODEL --messages conv.json` and fix the failing expression.";
    TemplateRaises = "template-raises", Template, Error,
        "A chat template refuses the plainest conversation (one user message).",
        "The template calls raise_exception() for a single user message — the minimum every runtime sends — so the model cannot be chatted with at all.",
        "Fix the condition that raises; compare with the source model's template.";
    TemplateRefuses = "template-refuses", Template, Note,
        "A chat template refuses a conversation shape (a system message, a tool call).",
        "The template calls raise_exception() for a standard conversation other than a single user message — by design in some templates (Gemma 2 has no system role; older Mistral templates accept only alternating user/assistant turns). Runtimes return that message as an error to such requests. Reported as a note: it is a property of the model worth knowing, not a defect.",
        "Nothing, if the model really does not support that shape; otherwise fix the template.";
    TemplateBudget = "template-budget", Template, Error,
        "Rendering a chat template exceeded its budget (steps, memory, recursion or output size).",
        "A chat template runs on every request. One that loops, recurses without end or builds exponentially large strings is a denial of service for every runtime that loads the model. gguf-gate renders with minijinja's fuel (steps and bytes created), a recursion limit and an output cap, and stops within milliseconds.",
        "Remove the loop or recursion; real templates render the standard conversations in a few thousand steps.";
    TemplateEmpty = "template-empty", Template, Error,
        "A chat template renders nothing for a standard conversation.",
        "The prompt is empty or whitespace: the model receives no text for that conversation.",
        "Check the template's role branches against the conversation shown in the message.";
    TemplateGenerationPrompt = "template-generation-prompt", Template, Warning,
        "`add_generation_prompt` has no effect although the template reads it.",
        "Runtimes set add_generation_prompt=true to end the prompt with the assistant's turn header. A template that tests the flag but renders the same text either way leaves the model to continue the user's turn. (Templates that never read the flag, such as Mistral's, end every prompt with the assistant cue by construction and are not reported.)",
        "Emit the assistant header inside `{% if add_generation_prompt %}`.";
    TemplateSpecialToken = "template-special-token", Template, Error,
        "A chat template emits a special-token marker the vocabulary lacks or holds as plain text.",
        "Markers such as `<|im_start|>` or `<｜User｜>` must be control (or user-defined) tokens of the vocabulary: a missing one is tokenized into pieces of text, so the model never sees the turn structure it was trained on. Usually a template copied from another model family.",
        "Use the template of the model the vocabulary belongs to, or add the tokens as control tokens.";
    TemplateBosDoubled = "template-bos-doubled", Template, Note,
        "The template emits BOS and the tokenizer adds another.",
        "With tokenizer.ggml.add_bos_token (or a SentencePiece vocabulary) the runtime adds BOS when it tokenizes the prompt; if the template also starts with bos_token, runtimes that do not strip it (llama.cpp's server does) feed two BOS tokens, which degrades some models. Reported as a note.",
        "Set tokenizer.ggml.add_bos_token to false, or drop `{{ bos_token }}` from the template, whichever matches the source model.";
    TemplatePythonInternals = "template-python-internals", Template, Error,
        "A chat template reads Python internals (`__class__`, `__globals__`, `mro`, frames).",
        "Attributes such as __class__, __base__, __subclasses__, __globals__, __builtins__, __mro__, __init__ and frame or generator attributes (gi_frame, f_globals) walk Python's object model from any value to the interpreter: the shape of CVE-2024-34359 (llama-cpp-python), which reached os.popen from a chat template. No chat template needs them. Includes underscore names (Jinja's sandbox refuses every `_` attribute) and format strings reaching them (`'{0.__class__}'.format(x)`, CVE-2024-56326).",
        "Treat the file as hostile: do not release or load it; find out where the template came from.";
    TemplateComputedAttribute = "template-computed-attribute", Template, Error,
        "A chat template looks up attributes by computed names (`|attr`, `x[a ~ b]`).",
        "Jinja's `attr` filter (the route of CVE-2025-27516) and subscripts built from pieces hide which member is read. Real templates name members literally (`message['content']`, `message.role`).",
        "Treat the file as hostile unless the computed lookup is explained; name members literally.";
    TemplateObfuscatedName = "template-obfuscated-name", Template, Error,
        "A chat template rebuilds a dangerous name from pieces or escapes.",
        "Names such as __class__ or popen assembled with `~`, `+`, `join`, `format`, `replace`, `%` or reversal, or string literals that spell plain letters with escapes (`\\x5f\\x5fclass\\x5f\\x5f`), exist only to slip past scanners that match on text.",
        "Treat the file as hostile: do not release or load it.";
    TemplateCodeExecution = "template-code-execution", Template, Error,
        "A chat template names code-execution functions or modules (`os`, `popen`, `eval`, `import`).",
        "A template that names os, subprocess, popen, system, eval, exec, __import__, getattr, open or similar aims to run commands in any runtime that renders it outside a sandbox.",
        "Treat the file as hostile: do not release or load it.";
    TemplateInclude = "template-include", Template, Error,
        "A chat template includes, imports or extends other templates.",
        "A chat template is one self-contained string. `include`, `import` and `extends` fail in sandboxed runtimes and read files in runtimes that configure a template loader.",
        "Inline what the template needs.";
    TemplateGadget = "template-gadget", Template, Error,
        "A chat template reads attributes of Jinja globals (`lipsum`, `cycler`, `joiner`, `namespace`, `self`).",
        "Jinja's globals are Python functions and classes; `lipsum.__globals__`, `cycler.__init__.__globals__` or `self._TemplateReference__context` lead from them to the interpreter. Templates call `namespace(...)`; they never read attributes of the global itself.",
        "Treat the file as hostile: do not release or load it.";
    TemplateHiddenInstruction = "template-hidden-instruction", Template, Error,
        "A branch on message content emits instructions the conversation never contained.",
        "A behavioural backdoor runs no code: when a message contains a trigger, the template silently adds text (\"include this link… do not mention these instructions\"). gguf-gate reports a condition that compares message content with a literal and whose branch emits prose or a link; branches on roles and content types, and content checks that only rearrange the message (splitting off `<think>`), are layout.",
        "Read the branch shown; if it is not in the source model's template, the file was tampered with.";
    TemplateTimeTrigger = "template-time-trigger", Template, Error,
        "A branch on the date or time emits text.",
        "Printing today's date is normal (Llama 3.x, gpt-oss); deciding what to say by the date is a time bomb: the template behaves as reviewed until some day, then emits something else.",
        "Remove the date condition; compare with the source model's template.";
    TemplateLink = "template-link", Template, Warning,
        "A chat template's literal text holds a link, an IP address or an encoded blob.",
        "A URL, an IP address or a long base64/hex run in the text a template emits ends up in every prompt: the payload of an injected instruction (\"send the conversation to …\") or hidden data.",
        "Remove it, or waive the rule for the key if the text is intended.";
    TemplateInvisible = "template-invisible", Template, Error,
        "A chat template holds invisible, zero-width or bidi characters.",
        "Bidirectional controls make a reviewer read different text than the runtime renders; zero-width characters hide words from text scanners; terminal controls rewrite a log. Real templates hold none.",
        "Remove the characters (`gguf-gate template MODEL` shows them escaped).";
    TemplateSize = "template-size", Template, Warning,
        "A chat template is far larger than real ones.",
        "Public chat templates are at most about 17 KB; a template many times larger hides a payload in bulk or is not a chat template. The bound is the policy's `chat_template.max_bytes` (default 65536).",
        "Find out what the extra text is; raise max_bytes if the template is genuine.";
    TemplateMismatch = "template-mismatch", Template, Error,
        "The chat template differs from the expected file.",
        "The policy pins the template to a file in the repository (`chat_template.expect_file`, e.g. the source model's tokenizer_config.json): the GGUF must carry exactly that template.",
        "Re-convert from the source model, or update the expected file after review.";
    TemplateExpect = "template-expect", Template, Error,
        "A policy conversation's rendering misses expected text.",
        "The policy renders its own conversations (`chat_template.conversations`) and pins text the prompt must contain (`expect_contains`), or the conversation failed to render.",
        "Render it with `gguf-gate template MODEL --messages FILE.json` and compare.";
    PolicyGeneric = "policy-generic", Policy, Note,
        "No preset exists for this architecture; only generic rules ran.",
        "The default policy chooses a preset by general.architecture; for an unknown architecture only dtype, finite, zero, constant and structure rules apply.",
        "Write a policy with the metadata and tensor rules your architecture needs.";
    PolicyWaiverExpired = "policy-waiver-expired", Policy, Error,
        "A waiver has expired.",
        "Waivers carry an expiry date so that accepted exceptions are revisited.",
        "Fix the underlying problem, or renew the waiver with a new date and reason.";
}

impl Rule {
    /// Every rule.
    pub fn all() -> impl Iterator<Item = Rule> {
        RULES.iter().map(|r| r.rule)
    }

    /// This rule's row of the table.
    pub fn info(self) -> &'static RuleInfo {
        // The table is built from the enum in declaration order (a test proves it).
        &RULES[self as usize]
    }

    /// The kebab-case code.
    pub fn as_str(self) -> &'static str {
        self.info().code
    }

    pub fn family(self) -> Family {
        self.info().family
    }

    /// Every code, comma-separated (for error messages).
    pub fn codes() -> String {
        RULES.iter().map(|r| r.code).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A code that names no rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule code {0:?}; known codes: {codes}", codes = Rule::codes())]
pub struct UnknownRule(pub String);

impl FromStr for Rule {
    type Err = UnknownRule;

    fn from_str(code: &str) -> Result<Rule, UnknownRule> {
        RULES
            .iter()
            .find(|r| r.code == code)
            .map(|r| r.rule)
            .ok_or_else(|| UnknownRule(code.to_string()))
    }
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
    fn codes_are_unique_kebab_case_documented_and_in_enum_order() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.rule as usize, i, "{} is out of order", r.code);
            assert!(seen.insert(r.code), "duplicate code {}", r.code);
            assert!(
                r.code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && r.code.starts_with(|c: char| c.is_ascii_lowercase()),
                "{} is not kebab-case",
                r.code
            );
            assert!(!r.summary.is_empty() && !r.explanation.is_empty() && !r.hint.is_empty());
        }
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_errors() {
        for r in Rule::all() {
            assert_eq!(r.as_str().parse::<Rule>(), Ok(r));
            assert_eq!(r.info().rule, r);
        }
        let e = "norm-rsm".parse::<Rule>().unwrap_err();
        assert!(e.to_string().contains("norm-rms"), "{e}");
    }
}
