//! The probe: greedy continuations of a few prompts, computed on the CPU by our
//! inference engine (`infer`) with the model's own tokenizer, and measured as text. The
//! rules in `rules/probe.rs` judge the measures; `gguf-gate run` shows a continuation.

pub mod text;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::gguf::GgufFile;
use crate::infer::{self, InferError, Model};
use crate::tokenizer::{Tokenizer, TokenizerError};

pub use text::{measure, TextMeasures};

/// Why the probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "the inference engine does not run architecture {0:?} (it runs {runs})",
        runs = crate::infer::Arch::names()
    )]
    UnsupportedArchitecture(String),
    #[error("inference: {0}")]
    Infer(#[from] InferError),
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
}

/// One prompt's continuation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Continuation {
    pub prompt: String,
    pub prompt_tokens: Vec<u32>,
    /// Generated ids (a final end-of-generation token included when one ended the run).
    pub tokens: Vec<u32>,
    /// The generated text (without a final end-of-generation token).
    pub text: String,
    pub prompt_ms: f64,
    pub decode_tok_s: f64,
    /// The probe's time budget cut the continuation short.
    pub stopped_by_budget: bool,
}

/// Load the tokenizer the probe uses: `tokenizer.json` when given, else the GGUF's own.
pub fn load_tokenizer(
    file: &GgufFile,
    tokenizer_json: Option<&Path>,
) -> Result<Tokenizer, ProbeError> {
    Ok(match tokenizer_json {
        Some(path) => Tokenizer::from_json_file(path)?,
        None => Tokenizer::from_gguf(&file.header)?,
    })
}

/// Load the model for inference, mapping an unsupported architecture to its own error.
pub fn load_model(file: &GgufFile) -> Result<Model<'_>, ProbeError> {
    Model::load(file).map_err(|e| match e {
        InferError::UnsupportedArchitecture { arch } => ProbeError::UnsupportedArchitecture(arch),
        other => ProbeError::Infer(other),
    })
}

/// Continue `prompt` greedily for up to `max_tokens` tokens (stopping at end of
/// generation, or — after at least one token — when `deadline` passes).
pub fn continue_prompt(
    model: &Model<'_>,
    tokenizer: &Tokenizer,
    prompt: &str,
    max_tokens: usize,
    deadline: Option<std::time::Instant>,
) -> Result<Continuation, ProbeError> {
    let mut one = continue_prompts(model, tokenizer, &[(prompt, max_tokens)], deadline)?;
    Ok(one.remove(0))
}

/// Continue each `(prompt, max_tokens)` as [`continue_prompt`] does, all decoded
/// together (`infer::generate_many`: one pass over the weights per step for every
/// prompt still running; each continuation is the one its prompt gets alone). One
/// continuation per prompt, in order.
pub fn continue_prompts(
    model: &Model<'_>,
    tokenizer: &Tokenizer,
    prompts: &[(&str, usize)],
    deadline: Option<std::time::Instant>,
) -> Result<Vec<Continuation>, ProbeError> {
    let encoded = prompts
        .iter()
        .map(|(text, _)| tokenizer.encode(text, None, false))
        .collect::<Result<Vec<_>, _>>()?;
    let requests: Vec<infer::Request<'_>> = encoded
        .iter()
        .zip(prompts)
        .map(|(tokens, &(_, max_tokens))| infer::Request {
            prompt_tokens: tokens,
            max_tokens,
        })
        .collect();
    let generations = infer::generate_many(
        model,
        &requests,
        |t| tokenizer.is_end_of_generation(t),
        deadline,
    )?;
    Ok(generations
        .into_iter()
        .zip(prompts)
        .map(|(generation, &(prompt, _))| {
            let shown: &[u32] = match generation.tokens.split_last() {
                Some((&last, rest)) if tokenizer.is_end_of_generation(last) => rest,
                _ => &generation.tokens,
            };
            Continuation {
                prompt: prompt.to_string(),
                text: tokenizer.decode(shown),
                prompt_tokens: generation.prompt_tokens,
                tokens: generation.tokens,
                prompt_ms: generation.prompt_ms,
                decode_tok_s: generation.decode_tok_s,
                stopped_by_budget: generation.stopped_by_deadline,
            }
        })
        .collect())
}

/// A recorded probe (`check --record-probe`): the token ids each prompt produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    pub model_fingerprint: String,
    pub prompts: Vec<BaselinePrompt>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselinePrompt {
    pub text: String,
    pub max_tokens: u64,
    pub tokens: Vec<u32>,
}
