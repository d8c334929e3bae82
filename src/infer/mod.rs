//! The inference engine behind the probe and `score`: a CPU forward pass for the
//! families in [`config::SUPPORTED`] (llama, bitnet, qwen2, qwen3, gemma3, phi3) and a
//! greedy decoding loop. The gate uses it to
//! check that a model file still *works* — that it produces the same tokens llama.cpp
//! would — so the arithmetic follows llama.cpp's CPU backend step by step (activation
//! quantization per weight type, F16 KV cache, f64 sums where ggml uses `ggml_float`);
//! see `docs/probe.md`, "The inference engine".
//!
//! Weights are never copied out of the memory map: [`Model`] borrows the [`GgufFile`]
//! and multiplies the quantized blocks in place. A GGUF file is untrusted, so loading
//! checks every tensor's presence, shape and type against the hyper-parameters and
//! reports problems as [`InferError`]s naming the key or tensor; nothing here panics on
//! input.
//!
//! [`GgufFile`]: crate::gguf::GgufFile

pub mod config;
pub mod kernels;
mod model;
pub mod team;

use std::time::Instant;

pub use config::{Arch, Config, FfnAct, SUPPORTED};
pub use kernels::RopeMode;
pub use model::{Logits, Model, Session, Step, DEFAULT_BATCH};

use crate::gguf::GgmlType;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(
        "unsupported architecture {arch:?}: the inference engine runs {}",
        config::Arch::names()
    )]
    UnsupportedArchitecture { arch: String },

    #[error("not supported by the inference engine: {what}")]
    Unsupported { what: String },

    #[error("metadata key general.architecture is missing")]
    MissingArchitecture,

    #[error("metadata key {key} is missing")]
    MissingKey { key: String },

    #[error("metadata key {key} {problem}")]
    BadKey { key: String, problem: String },

    #[error("tensor {name} is missing")]
    MissingTensor { name: String },

    #[error("tensor {name} has shape {found:?}; the hyper-parameters require {expected:?}")]
    BadShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },

    #[error("tensor {name} has type {ty}, which the inference engine cannot {role}")]
    UnsupportedType {
        name: String,
        ty: GgmlType,
        role: &'static str,
    },

    #[error("tensor {name}: {problem}")]
    BadTensor { name: String, problem: String },

    #[error("token id {token} is out of range: the vocabulary has {vocab} tokens")]
    TokenOutOfRange { token: u32, vocab: usize },

    #[error(
        "position {pos} cannot be run: the session has {filled} of {capacity} positions filled"
    )]
    PositionOutOfRange {
        pos: usize,
        filled: usize,
        capacity: usize,
    },

    #[error("{needed} positions exceed the model's context length of {context_length}")]
    ContextTooLong {
        needed: usize,
        context_length: usize,
    },

    #[error("the prompt is empty: greedy decoding needs at least one token")]
    EmptyPrompt,

    #[error("the session was created for a different model")]
    SessionMismatch,
}

/// The result of [`generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub prompt_tokens: Vec<u32>,
    /// Generated ids; a stop token, when one ended the run, is the last element.
    pub tokens: Vec<u32>,
    /// Wall time to process the prompt (through the logits of its last token).
    pub prompt_ms: f64,
    /// Forward passes per second after the prompt (0 when there were none).
    pub decode_tok_s: f64,
    /// Generation stopped early because the deadline passed.
    pub stopped_by_deadline: bool,
}

/// The id of the largest logit; ties go to the lowest id, NaNs are never chosen (an
/// all-NaN vector gives 0).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i as u32)
}

/// Greedy decoding: run the prompt, then repeatedly take the argmax until `max_tokens`
/// ids were produced or `is_stop` accepts one. Parallel over rows with as many threads as
/// rayon's current pool has (`team.rs`); the output does not depend on their number.
pub fn generate(
    model: &Model<'_>,
    prompt_tokens: &[u32],
    max_tokens: usize,
    is_stop: impl Fn(u32) -> bool,
) -> Result<Generation, InferError> {
    generate_until(model, prompt_tokens, max_tokens, is_stop, None)
}

/// [`generate`], stopping early (after at least one token) once `deadline` has passed.
pub fn generate_until(
    model: &Model<'_>,
    prompt_tokens: &[u32],
    max_tokens: usize,
    is_stop: impl Fn(u32) -> bool,
    deadline: Option<Instant>,
) -> Result<Generation, InferError> {
    let request = Request {
        prompt_tokens,
        max_tokens,
    };
    let mut one = generate_many(model, &[request], is_stop, deadline)?;
    one.pop().ok_or(InferError::EmptyPrompt)
}

/// One prompt of [`generate_many`].
#[derive(Clone, Copy, Debug)]
pub struct Request<'p> {
    pub prompt_tokens: &'p [u32],
    /// Tokens to produce at most.
    pub max_tokens: usize,
}

/// Greedy decoding of several prompts together, each a lane of one session: the
/// prompts run through the layers as one batch, then each step decodes the next token
/// of every unfinished prompt in one pass over the weights. A token's logits do not
/// depend on what else is in its batch, so each result is, bit for bit, what
/// [`generate`] gives for its prompt alone. With a `deadline`, every prompt stops once
/// it has passed (each has at least one token by then: the first comes from the
/// prompt's own pass). `prompt_ms` is the joint prompt pass's; `decode_tok_s` counts
/// each prompt's own passes over the time it was decoding.
pub fn generate_many(
    model: &Model<'_>,
    requests: &[Request<'_>],
    is_stop: impl Fn(u32) -> bool,
    deadline: Option<Instant>,
) -> Result<Vec<Generation>, InferError> {
    let vocab = model.config().vocab;
    let context_length = model.config().context_length;
    let mut longest = 0usize;
    for r in requests {
        if r.prompt_tokens.is_empty() {
            return Err(InferError::EmptyPrompt);
        }
        if let Some(&token) = r.prompt_tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(InferError::TokenOutOfRange { token, vocab });
        }
        // The last generated token is never run: the prompt plus max_tokens - 1 positions.
        let needed = r
            .prompt_tokens
            .len()
            .saturating_add(r.max_tokens.saturating_sub(1));
        if needed > context_length {
            return Err(InferError::ContextTooLong {
                needed,
                context_length,
            });
        }
        longest = longest.max(needed);
    }
    let mut session = model.new_session_lanes(longest, DEFAULT_BATCH, requests.len());
    let prompts: Vec<Step> = requests
        .iter()
        .enumerate()
        .flat_map(|(lane, r)| {
            r.prompt_tokens
                .iter()
                .enumerate()
                .map(move |(pos, &token)| Step { lane, pos, token })
        })
        .collect();
    let start = Instant::now();
    model.forward_steps(&mut session, &prompts, Logits::Last)?;
    let prompt_ms = start.elapsed().as_secs_f64() * 1e3;

    let decode_start = Instant::now();
    let mut lanes: Vec<Lane> = requests
        .iter()
        .map(|r| Lane {
            tokens: Vec::with_capacity(r.max_tokens),
            passes: 0,
            decode_secs: 0.0,
            stopped_by_deadline: false,
        })
        .collect();
    // The lanes that asked for logits in the last pass, in the order of its rows.
    let mut rows: Vec<usize> = (0..requests.len()).collect();
    let mut steps = Vec::with_capacity(requests.len());
    loop {
        let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
        steps.clear();
        for (row, &lane_index) in rows.iter().enumerate() {
            let (Some(lane), Some(r)) = (lanes.get_mut(lane_index), requests.get(lane_index))
            else {
                continue;
            };
            let logits = session
                .logit_rows()
                .get(row * vocab..(row + 1) * vocab)
                .unwrap_or(&[]);
            let next = argmax(logits);
            lane.tokens.push(next);
            let finished = is_stop(next) || lane.tokens.len() >= r.max_tokens;
            if finished || out_of_time {
                lane.stopped_by_deadline = !finished;
                lane.decode_secs = decode_start.elapsed().as_secs_f64();
            } else {
                steps.push(Step {
                    lane: lane_index,
                    pos: session.lane_len(lane_index),
                    token: next,
                });
            }
        }
        if steps.is_empty() {
            break;
        }
        model.forward_steps(&mut session, &steps, Logits::Last)?;
        rows.clear();
        rows.extend(steps.iter().map(|s| s.lane));
        for s in &steps {
            if let Some(lane) = lanes.get_mut(s.lane) {
                lane.passes += 1;
            }
        }
    }
    Ok(requests
        .iter()
        .zip(lanes)
        .map(|(r, lane)| Generation {
            prompt_tokens: r.prompt_tokens.to_vec(),
            decode_tok_s: if lane.passes > 0 && lane.decode_secs > 0.0 {
                lane.passes as f64 / lane.decode_secs
            } else {
                0.0
            },
            tokens: lane.tokens,
            prompt_ms,
            stopped_by_deadline: lane.stopped_by_deadline,
        })
        .collect())
}

/// One prompt's progress in [`generate_many`].
struct Lane {
    tokens: Vec<u32>,
    passes: usize,
    /// Seconds from the end of the prompt pass to the lane's last token.
    decode_secs: f64,
    stopped_by_deadline: bool,
}

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn argmax_prefers_lowest_id_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0, f32::NAN, -0.5]), 3);
        assert_eq!(argmax(&[f32::NAN]), 0);
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
    }
}
