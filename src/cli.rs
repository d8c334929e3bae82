//! The command line, as clap derive definitions: one `…Args` struct per command. Parsing
//! only: what each command does lives in `cmd/<command>.rs`, which calls the library.
//! Part of the binary, not the library (the library has no clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Decide whether a GGUF model file may be released.";

const LONG_ABOUT: &str = "\
gguf-gate checks GGUF model files (llama.cpp's format) before they are released:
`check` reads the file strictly, runs a declarative policy (required metadata, norm
weights kept float and within RMS envelopes, projection RMS spread, finite and
non-degenerate tensors, pinned fingerprints), runs a short CPU greedy-decoding probe
that must read as language, and writes the verdict as text, JSON, JUnit XML, SARIF 2.1.0
or GitHub annotations. `export` turns a Hugging Face checkpoint into a clean GGUF;
`quantize` makes Q8_0/Q4_0/TQ1_0/TQ2_0/I2_S files that never quantize a norm.

`diff` says what changed between two releases, weights included, and a policy's
`baseline:` bounds that change.

Exit codes: 0 pass, 1 the check failed (policy failed, fingerprint mismatch),
2 usage, policy-file or input error (unreadable or malformed file, bad arguments);
`diff`: 0 identical, 1 different, 2 error.";

const AFTER_HELP: &str = "\
Examples:
  gguf-gate check model.gguf                   the default policy for its architecture
  gguf-gate check model.gguf --policy gate.yaml --sarif gate.sarif --junit gate.xml
  gguf-gate init -o gate.yaml                  a commented starter policy
  gguf-gate inspect model.gguf                 header, metadata, tensor table
  gguf-gate inspect model.gguf --format json --full > header.json
  gguf-gate fingerprint model.gguf --write     writes model.fingerprint
  gguf-gate fingerprint model.gguf --verify model.fingerprint
  gguf-gate stats model.gguf --filter '*_norm.weight'
  gguf-gate diff v1.gguf v2.gguf               what changed between two releases
  gguf-gate export ./SmolLM2-135M --out dist/   HF checkpoint -> dist/SmolLM2-135M-f16.gguf
  gguf-gate quantize dist/SmolLM2-135M-f16.gguf --type q8_0   -> dist/SmolLM2-135M-f16-q8_0.gguf";

#[derive(Debug, Parser)]
#[command(name = "gguf-gate", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The gate: check a model against a policy and report the verdict.
    #[command(after_help = "\
With no --policy, gguf-gate.yaml (or .gguf-gate.yaml) in the working directory or the
git top level is used when there is one; else the embedded `default` policy: the preset
for the model's general.architecture (llama, bitnet-b1.58) or generic rules. Several
models get one verdict each and one report file per format (SARIF: one run per model).
One run writes every requested report; stdout gets --format. Exit 0 every model passed,
1 a policy failed, 2 usage, policy-file or input error.

Examples:
  gguf-gate check model.gguf
  gguf-gate check model.gguf --policy gate.yaml --strict --json report.json
  gguf-gate check 'dist/*.gguf' --sarif gate.sarif                 # several models
  gguf-gate check model.gguf --format github --sarif gate.sarif   # in GitHub Actions")]
    Check(CheckArgs),
    /// Greedy generation on the CPU, as the probe runs it.
    #[command(after_help = "\
Runs llama-family and bitnet-b1.58 models with kernels that follow llama.cpp's CPU
backend (quantized activations, F16 KV cache), so the tokens agree with llama.cpp's.
JSON: {\"prompt_tokens\": [...], \"tokens\": [...], \"text\": \"...\",
\"timings\": {\"prompt_ms\": ..., \"decode_tok_s\": ...}}.

Example:
  gguf-gate run model.gguf --prompt \"The capital of France is\" --max-tokens 32")]
    Run(RunArgs),
    /// Perplexity of a model on a text, and KL divergence from a base model.
    #[command(after_help = "\
Teacher-forced: every position of the text is run (in batches) and the model's
distribution over the next token is compared with the token that follows (perplexity)
and with a base model's distribution (KL divergence, KL(base || model), as llama.cpp's
llama-perplexity --kl-divergence reports it). The text defaults to the bundled
evaluation text. docs/quality.md describes the numbers, the JSON and the .npy output.

Examples:
  gguf-gate score model-q4_0.gguf --base model-f16.gguf
  gguf-gate score model-f16.gguf --record-base f16.record.json    # keep the base compact
  gguf-gate score model-q4_0.gguf --base-logits f16.record.json --format json
  gguf-gate score model.gguf --text corpus.txt --logits-out logits.npy")]
    Score(ScoreArgs),
    /// List every rule code with its family, default severity and summary.
    Rules(RulesArgs),
    /// Explain a rule: what it checks, why it matters, how to fix a failure.
    Explain(ExplainArgs),
    /// Print the JSON Schema of the policy file.
    Schema,
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  gguf-gate completions bash > /etc/bash_completion.d/gguf-gate
  gguf-gate completions zsh > \"${fpath[1]}/_gguf-gate\"
  gguf-gate completions fish > ~/.config/fish/completions/gguf-gate.fish
  gguf-gate completions powershell >> $PROFILE")]
    Completions(CompletionsArgs),
    /// Print the man page (roff), as the release ships it in gguf-gate.1.
    #[command(after_help = "Example:\n  gguf-gate man > gguf-gate.1 && man ./gguf-gate.1")]
    Man,
    /// Write a starter policy: commented, extending `default`; or a copy of a named preset.
    #[command(after_help = "\
Examples:
  gguf-gate init                          writes gguf-gate.yaml extending `default`
  gguf-gate init --preset llama --stdout  print the llama preset (a valid policy to edit)")]
    Init(InitArgs),
    /// Show the header: version, every metadata key, the tensor table and a summary.
    #[command(after_help = "\
The JSON shape (documented in docs/inspect.md):
  {\"version\", \"summary\", \"metadata\": [{\"key\",\"type\",\"value\"}...] in file order,
   \"tensors\": [{\"name\",\"type\",\"dims\" (ggml order),\"elements\",\"offset\",\"bytes\"}...]}
Arrays are abbreviated to {\"len\",\"type\",\"head\"} unless --full is given.")]
    Inspect(InspectArgs),
    /// Render a chat template with a conversation and print the prompt.
    #[command(after_help = "\
MODEL is a GGUF file, a Hugging Face tokenizer_config.json or a template file (.jinja).
The template is rendered as transformers' apply_chat_template renders it (trim_blocks,
lstrip_blocks, Python string methods, tojson without HTML escaping, strftime_now pinned
to 2026-01-15), with the model's bos_token/eos_token. Without --messages, a system and a
user message are rendered. Invisible and control characters in the prompt are printed
as escapes (\\u{200b}) unless --raw. --check runs the template-* rules instead (exit 1
when one fails at error level).

--messages FILE.json holds an array of messages, or an object
  {\"messages\": [...], \"tools\": [...], \"add_generation_prompt\": true, \"variables\": {...}}

Examples:
  gguf-gate template model.gguf
  gguf-gate template model.gguf --messages conversation.json --no-generation-prompt
  gguf-gate template model.gguf --list
  gguf-gate template model.gguf --name tool_use --format json
  gguf-gate template tokenizer_config.json --check")]
    Template(TemplateArgs),
    /// Per-tensor statistics of the true (dequantized) values.
    #[command(after_help = "\
Columns: elements, RMS, mean, std, min, max (over finite values), and counts of NaN,
+-Inf and exact zeros. JSON: {\"tensors\": [{\"name\",\"type\",\"elements\",\"rms\",
\"mean\",\"std\",\"min\",\"max\",\"nan\",\"inf\",\"zeros\"}...], \"errors\": [...]}.
A tensor whose type cannot be decoded is listed under errors and the command exits 2.

Examples:
  gguf-gate stats model.gguf --filter '*_norm.weight'
  gguf-gate stats model.gguf --format json --output stats.json")]
    Stats(StatsArgs),
    /// Print the file's fingerprint, `sha256-<64 hex>` of its bytes.
    #[command(after_help = "\
--verify accepts either a fingerprint string or a file containing one (such as
the MODEL.fingerprint that --write makes); a mismatch exits 1.")]
    Fingerprint(FingerprintArgs),
    /// What changed between two releases: header, metadata, chat templates, tensors.
    #[command(after_help = "\
OLD and NEW are GGUF files, or summaries recorded with `check --record-baseline`. Keys
added, removed, changed (type or value; long arrays by length and first difference; the
vocabulary as tokens added/removed/changed); chat templates with a unified diff; tensors
added, removed, dtype or shape changed, byte-identical or not (per-tensor SHA-256), and
for tensors in both the RMS of each and of their difference, relative: |new-old|/|old|
of the dequantized values, in one pass over each file. A summary first: what changed,
ordered by how much it matters (header and architecture, loader keys and tensor set,
template, norms, the largest weight changes, other metadata). JSON shape: docs/diff.md.
Exit 0 identical, 1 different, 2 error (as diff(1)).

Examples:
  gguf-gate diff v1.gguf v2.gguf
  gguf-gate diff v1.gguf v2.gguf --format markdown >> \"$GITHUB_STEP_SUMMARY\"
  gguf-gate diff v1.gguf v2.gguf --filter 'blk.0.*' --filter 'tokenizer.*'
  gguf-gate diff v1.baseline.json v2.gguf --format json")]
    Diff(DiffArgs),
    /// Convert a Hugging Face checkpoint (safetensors or .bin) into a clean F16 GGUF.
    #[command(after_help = "\
DIR holds config.json (model_type llama, mistral, bitnet, qwen2, qwen3, gemma3_text or
phi3) and model.safetensors, or the shards named by model.safetensors.index.json;
failing both, pytorch_model.bin (or pytorch_model.bin.index.json + shards), read without
executing the pickle: only a state dict of F32/F16/BF16 tensors is accepted. The
tokenizer is DIR/tokenizer.model (SentencePiece) when present, else DIR/tokenizer.json.
Matrices become F16 (--outtype), every norm and 1-D tensor stays F32, nothing is
quantized; each family is converted as llama.cpp's convert_hf_to_gguf.py does (llama's
Q/K rows permuted for its RoPE, Gemma's norms +1, Phi-3's projections kept fused, Llama 3
rope scaling as rope_freqs.weight); BitNet's packed ternary U8 weights are unpacked and
scaled. Writes, in OUTDIR:
  <name>-f16.gguf          the model (atomically: temp file, fsync, rename)
  <name>-f16.fingerprint   sha256-<hex> of the .gguf
  <name>-f16.meta.json     source files and their sha256, tokenizer, converter, output
The same inputs give the same bytes. Existing outputs are kept unless --force.
Exit 0 written, 1 --strict gate failed (nothing written), 2 usage or input error.

Examples:
  gguf-gate export ./SmolLM2-135M-Instruct --out dist/
  gguf-gate export ./ckpt --tokenizer ./ckpt/tokenizer.json --out dist/ --name my-model
  gguf-gate export ./bitnet-b1.58-2B-4T --out dist/ --outtype bf16 --strict
  gguf-gate check dist/SmolLM2-135M-Instruct-f16.gguf    # then gate it, probe included")]
    Export(ExportArgs),
    /// Quantize a GGUF to Q8_0, Q4_0, TQ1_0, TQ2_0 or I2_S, never quantizing a norm.
    #[command(after_help = "\
Every 2-D weight matrix whose row length is a whole number of blocks (32 for q8_0/q4_0,
256 for tq1_0/tq2_0, 128 for i2_s) is decoded (any type gguf-gate reads) and quantized
as ggml's reference quantizers do. Norms (the default policy's norm patterns) and every
1-D tensor are never quantized; other tensors are kept as they are and listed. For the
ternary types (tq1_0, tq2_0, i2_s: BitNet b1.58 weights) token_embd.weight and
output.weight become q8_0. general.file_type is set (q8_0 7, q4_0 2, tq1_0 36, tq2_0 37,
i2_s 40 as bitnet.cpp). Writes, atomically:
  OUT (default IN-<type>.gguf beside IN), OUT's .fingerprint and .meta.json
The same input gives the same bytes, whatever the thread count. Existing outputs are kept
unless --force; OUT may never be IN.
Exit 0 written, 1 --strict gate failed (nothing written), 2 usage or input error.

Examples:
  gguf-gate quantize model-f16.gguf --type q8_0            # model-f16-q8_0.gguf
  gguf-gate quantize bitnet-f16.gguf --type i2_s --out dist/bitnet-i2_s.gguf --strict
  gguf-gate quantize model-f16.gguf --type q4_0 --force
  gguf-gate check model-f16-q8_0.gguf                       # then gate it, probe included")]
    Quantize(QuantizeArgs),
}

/// `gguf-gate template`.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// A GGUF model, a tokenizer_config.json or a template file.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The named template (`tokenizer.chat_template.<name>`); default: the default one.
    #[arg(long, short)]
    pub name: Option<String>,
    /// A JSON file with the conversation to render.
    #[arg(long, value_name = "FILE.json")]
    pub messages: Option<PathBuf>,
    /// Render with add_generation_prompt=false.
    #[arg(long)]
    pub no_generation_prompt: bool,
    /// List the templates the file holds, with their size and SHA-256.
    #[arg(long, conflicts_with_all = ["check", "messages"])]
    pub list: bool,
    /// Run the template rules (the default policy's) and print what fails.
    #[arg(long, conflicts_with = "messages")]
    pub check: bool,
    /// Print the prompt byte for byte, hidden characters included.
    #[arg(long)]
    pub raw: bool,
    /// Text, or JSON: {"template", "prompt"}.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `gguf-gate check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The GGUF file(s) to gate; a pattern with `*` or `?` is expanded (sorted).
    #[arg(required = true, value_name = "MODEL")]
    pub models: Vec<String>,
    /// Policy file (YAML). Default: `gguf-gate.yaml` or `.gguf-gate.yaml` in the working
    /// directory or the git top level, else the embedded `default` policy; `none` forces
    /// the embedded default.
    #[arg(long, short)]
    pub policy: Option<PathBuf>,
    /// tokenizer.json for the probe (default: the vocabulary embedded in the GGUF).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Warnings become errors and waivers are not applied (also GGUF_GATE_STRICT=1, or its
    /// alias BITNET_STRICT_MODE=1).
    #[arg(long)]
    pub strict: bool,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
    pub format: CheckFormat,
    /// Colour in the human report: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Print only the failures and the verdict.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write SARIF 2.1.0 here.
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
    /// Also write the Markdown summary here.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Also write a self-contained HTML report here: findings, per-layer RMS plots with
    /// the policy's envelopes, the probe, the metadata checks (no script, works offline).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// The lowest severity that fails the gate.
    #[arg(long, value_enum, default_value_t = FailLevel::Error)]
    pub fail_level: FailLevel,
    /// Exit 0 even when the policy fails (reports still say FAILED).
    #[arg(long)]
    pub exit_zero: bool,
    /// Skip the probe (a structural gate only; reported as the note `probe-skipped`).
    #[arg(long, conflicts_with = "record_probe")]
    pub no_probe: bool,
    /// Record the probe's token ids to this file (a baseline for `probe.baseline`).
    #[arg(long, value_name = "FILE")]
    pub record_probe: Option<PathBuf>,
    /// Record the model's summary to this file (per-tensor dtype, shape, SHA-256 and RMS,
    /// and the metadata), in the same read: a baseline for the policy's `baseline.file`
    /// and for `gguf-gate diff`.
    #[arg(long, value_name = "FILE")]
    pub record_baseline: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `gguf-gate run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The GGUF model.
    pub model: PathBuf,
    /// The text to continue.
    #[arg(long)]
    pub prompt: String,
    /// tokenizer.json (default: the vocabulary embedded in the GGUF).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Tokens to generate (stops early at end of generation).
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `gguf-gate rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// `text` (a table) or `markdown` (docs/rules.md).
    #[arg(long, value_enum, default_value_t = RulesFormat::Text)]
    pub format: RulesFormat,
}

/// `gguf-gate explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A rule code, e.g. norm-dtype.
    pub rule: String,
}

/// `gguf-gate init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The preset to extend: default, llama, bitnet-b1.58, generic.
    #[arg(long, default_value = "default")]
    pub preset: String,
    /// Print instead of writing a file.
    #[arg(long)]
    pub stdout: bool,
    /// Where to write (refuses to overwrite unless --force).
    #[arg(long, short, default_value = "gguf-gate.yaml")]
    pub output: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `gguf-gate inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The GGUF file to read.
    pub model: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Show arrays and long strings in full.
    #[arg(long)]
    pub full: bool,
    /// Write the report to this file (atomically) instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `gguf-gate stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The GGUF file to read.
    pub model: PathBuf,
    /// Output format: a table, JSON, or a self-contained HTML page with per-layer RMS plots
    /// (bands: the default policy's envelopes for the model's architecture).
    #[arg(long, value_enum, default_value_t = StatsFormat::Text)]
    pub format: StatsFormat,
    /// Only tensors whose name matches this glob (`*`, `?`); repeat to add more.
    #[arg(long, value_name = "GLOB")]
    pub filter: Vec<String>,
    /// Write the report to this file (atomically) instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `gguf-gate diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The previous release: a GGUF file, or a summary recorded with `check --record-baseline`.
    pub old: PathBuf,
    /// The new release: a GGUF file, or a recorded summary.
    pub new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
    /// Only keys and tensors whose name matches this glob (`*`, `?`); repeat to add more.
    #[arg(long, value_name = "GLOB")]
    pub filter: Vec<String>,
    /// Write the report to this file (atomically) instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `gguf-gate fingerprint`.
#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// The file to hash (any file; typically a GGUF model).
    pub model: PathBuf,
    /// Also write the fingerprint beside the model: model.gguf -> model.fingerprint.
    #[arg(long)]
    pub write: bool,
    /// Compare with an expected fingerprint (a `sha256-...` string or a file holding one).
    #[arg(long, value_name = "FINGERPRINT|FILE")]
    pub verify: Option<String>,
}

/// `gguf-gate export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The checkpoint directory (config.json + safetensors or pytorch_model.bin).
    pub dir: PathBuf,
    /// tokenizer.json or a SentencePiece *.model (default: DIR/tokenizer.model when it
    /// exists, else DIR/tokenizer.json); tokenizer_config.json beside it supplies BOS/EOS,
    /// the add flags and the chat template.
    #[arg(long, value_name = "T")]
    pub tokenizer: Option<PathBuf>,
    /// The output directory (created if missing).
    #[arg(long, short, value_name = "OUTDIR")]
    pub out: PathBuf,
    /// Element type of the matrices (norms and 1-D tensors are always F32).
    #[arg(long, value_enum, default_value_t = OutType::F16)]
    pub outtype: OutType,
    /// Base name of the outputs (default: DIR's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace existing outputs.
    #[arg(long)]
    pub force: bool,
    /// Gate the written file (strict mode, default policy: metadata, norm and tensor
    /// rules) before it takes its name; a failure leaves no file and exits 1. Also
    /// GGUF_GATE_STRICT=1 (or BITNET_STRICT_MODE=1).
    #[arg(long)]
    pub strict: bool,
    /// Skip checkpoint tensors that have no GGUF name instead of failing.
    #[arg(long)]
    pub allow_unmapped: bool,
}

/// `gguf-gate quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The GGUF to quantize (never modified).
    pub input: PathBuf,
    /// The target type.
    #[arg(long = "type", short = 't', value_enum, value_name = "TYPE")]
    pub ty: QuantTypeArg,
    /// The output file (default: IN-<type>.gguf beside IN).
    #[arg(long, short, value_name = "OUT.gguf")]
    pub out: Option<PathBuf>,
    /// Replace existing outputs.
    #[arg(long)]
    pub force: bool,
    /// Gate the written file (strict mode, default policy: metadata, norm and tensor
    /// rules; no probe) before it takes its name; a failure leaves no file and exits 1.
    /// Also GGUF_GATE_STRICT=1 (or BITNET_STRICT_MODE=1).
    #[arg(long)]
    pub strict: bool,
}

/// `gguf-gate score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The GGUF model to score.
    pub model: PathBuf,
    /// The text (UTF-8). Default: the bundled evaluation text.
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
    /// A base model to compare with (it must share the model's vocabulary).
    #[arg(long, value_name = "BASE.gguf", conflicts_with = "base_logits")]
    pub base: Option<PathBuf>,
    /// A base recorded earlier with --record-base, instead of --base.
    #[arg(long, value_name = "FILE")]
    pub base_logits: Option<PathBuf>,
    /// Record this model as a base: its top logits per position, compact, with the
    /// text's and the model's fingerprints.
    #[arg(long, value_name = "FILE")]
    pub record_base: Option<PathBuf>,
    /// Write every position's logits as a NumPy .npy file (f32, [n_tokens, n_vocab]).
    #[arg(long, value_name = "FILE.npy")]
    pub logits_out: Option<PathBuf>,
    /// Tokens of context per chunk of the text.
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// tokenizer.json (default: the vocabulary embedded in the GGUF); with --base it
    /// tokenizes for both models (the base's embedded vocabulary is not consulted).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `gguf-gate completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

/// `check --color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// `quantize --type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QuantTypeArg {
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "tq1_0")]
    Tq1_0,
    #[value(name = "tq2_0")]
    Tq2_0,
    #[value(name = "i2_s")]
    I2S,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutType {
    F16,
    Bf16,
    F32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    Text,
    Json,
    Html,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Human,
    Json,
    Github,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailLevel {
    Error,
    Warning,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RulesFormat {
    Text,
    Markdown,
}
