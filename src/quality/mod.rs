//! The quality gate's measurement: teacher-forced evaluation of a model on a text, the
//! way llama.cpp's `llama-perplexity` (with `--kl-divergence`) measures quantization
//! damage. Every position of the text is run through the model in batches (whole chunks
//! through the matrix kernels); at each position the model's distribution over the next
//! token gives its negative log-likelihood (perplexity) and, against a base model — live,
//! or recorded with [`record::BaseRecord`] — the KL divergence `KL(base || model)` and
//! whether both pick the same top token. `gguf-gate score` prints the [`Score`];
//! `rules/quality.rs` holds it to the policy's `quality:` bounds.

pub mod npy;
pub mod record;

use std::io::Write;
use std::time::Instant;

use serde::Serialize;

use crate::gguf::GgufFile;
use crate::infer::{argmax, InferError, Logits, Model};
use crate::tokenizer::{Tokenizer, TokenizerError};
use record::BaseRecord;

/// The bundled evaluation text (`fixtures/text/eval.txt`, written for gguf-gate, CC0).
pub const BUNDLED_TEXT: &str = include_str!("../../fixtures/text/eval.txt");

/// Positions run through the model at once (a batch of logit rows in memory).
const SCORE_BATCH: usize = 64;

/// Why scoring could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("inference: {0}")]
    Infer(#[from] InferError),
    #[error("the text has {0} token(s); scoring needs at least 2")]
    TooShort(usize),
    #[error("the base {what} differs from the model's: {detail}")]
    BaseMismatch { what: &'static str, detail: String },
    #[error("writing the logits: {0}")]
    Io(#[from] std::io::Error),
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("the text tokenizes to id {token}, outside the model's vocabulary of {vocab} (another tokenizer?)")]
    TokenOutOfVocab { token: u32, vocab: usize },
}

/// Where the base of a file comparison comes from.
pub enum BaseSource<'a> {
    None,
    /// A base GGUF, loaded and run on the model's tokens. Unless `shared_tokenizer` (the
    /// caller's `--tokenizer` stands for both models), its own vocabulary must first prove
    /// it tokenizes the text to them; the vocabulary sizes must agree either way.
    File {
        base: &'a GgufFile,
        shared_tokenizer: bool,
    },
    Record(&'a BaseRecord),
}

/// Score `text` with the model in `file` (tokenized by `tokenizer`, BOS as the model
/// adds it) against `base`: loads the models, proves the base tokenizes the text to the
/// same ids, and runs [`score`]. Returns the tokens too (for a record).
pub fn score_text(
    file: &GgufFile,
    tokenizer: &Tokenizer,
    text: &str,
    base: BaseSource<'_>,
    options: ScoreOptions<'_>,
) -> Result<(Score, Vec<u32>), ScoreError> {
    let tokens = tokenizer.encode(text, None, false)?;
    let model = Model::load(file)?;
    let score = match base {
        BaseSource::None => score(&model, &tokens, Base::None, options)?,
        BaseSource::Record(r) => score(&model, &tokens, Base::Recorded(r), options)?,
        BaseSource::File {
            base,
            shared_tokenizer,
        } => {
            if !shared_tokenizer {
                let base_tokens = Tokenizer::from_gguf(&base.header)?.encode(text, None, false)?;
                if base_tokens != tokens {
                    return Err(ScoreError::BaseMismatch {
                        what: "tokenization",
                        detail: format!(
                            "the base tokenizes the text to {} tokens, the model to {}: they do not share a vocabulary",
                            base_tokens.len(),
                            tokens.len()
                        ),
                    });
                }
            }
            let base_model = Model::load(base)?;
            score(&model, &tokens, Base::Live(&base_model), options)?
        }
    };
    Ok((score, tokens))
}

/// Where the base distributions come from.
pub enum Base<'a, 'm> {
    None,
    /// A base model run on the same tokens.
    Live(&'a Model<'m>),
    /// A base recorded earlier (`--record-base`).
    Recorded(&'a BaseRecord),
}

/// How to score.
pub struct ScoreOptions<'a> {
    /// Tokens per chunk of context (the model sees at most this many before a position).
    pub ctx: usize,
    /// Write every position's logits here as a NumPy `.npy` file (header, then the rows).
    pub logits_out: Option<&'a mut dyn Write>,
    /// Keep the base's top tokens per position to record them (`--record-base`).
    pub record_top_k: Option<usize>,
}

/// One scored position: the token it predicts and what each side thought of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Position {
    /// Index of the predicted token in the token list.
    pub index: usize,
    pub nll: f64,
    /// The base's negative log-likelihood of the same token.
    pub base_nll: Option<f64>,
    pub kld: Option<f64>,
    pub same_top1: Option<bool>,
}

/// The result of scoring a text.
#[derive(Clone, Debug, Serialize)]
pub struct Score {
    pub tokens: usize,
    /// Tokens per chunk actually used (the requested context, capped by the model's and
    /// the text's length).
    pub ctx: usize,
    /// Positions scored (every token but the first of each chunk).
    pub scored: usize,
    pub mean_nll: f64,
    pub perplexity: f64,
    pub seconds: f64,
    pub tokens_per_second: f64,
    pub base: Option<BaseComparison>,
    #[serde(skip)]
    pub positions: Vec<Position>,
    /// The model's top tokens per position (for `--record-base`), when asked.
    #[serde(skip)]
    pub top: Option<record::TopTokens>,
}

/// The model against its base.
#[derive(Clone, Debug, Serialize)]
pub struct BaseComparison {
    pub mean_kld: f64,
    pub median_kld: f64,
    pub p99_kld: f64,
    pub max_kld: f64,
    /// Share of positions where both pick the same top-1 token.
    pub same_top1: f64,
    pub base_perplexity: f64,
    /// Model perplexity over base perplexity.
    pub perplexity_ratio: f64,
    /// The positions that diverge most, worst first.
    pub worst: Vec<Divergence>,
}

/// A position where the model diverges from its base.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Divergence {
    /// Index of the predicted token in the tokenized text.
    pub token: usize,
    pub kld: f64,
}

/// `log Σ exp(row)` in f64.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln()
}

/// `KL(p || q)` over full distributions given as logits.
fn kl_full(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let (lp, lq) = (log_sum_exp(p_logits), log_sum_exp(q_logits));
    p_logits
        .iter()
        .zip(q_logits)
        .map(|(&a, &b)| {
            let log_p = a as f64 - lp;
            log_p.exp() * (log_p - (b as f64 - lq))
        })
        .sum::<f64>()
        .max(0.0)
}

/// Score `tokens` with `model`: chunks of `ctx` tokens, each run from an empty context in
/// batches; position `t` of a chunk predicts token `t + 1`.
pub fn score(
    model: &Model<'_>,
    tokens: &[u32],
    base: Base<'_, '_>,
    mut options: ScoreOptions<'_>,
) -> Result<Score, ScoreError> {
    if tokens.len() < 2 {
        return Err(ScoreError::TooShort(tokens.len()));
    }
    let vocab = model.config().vocab;
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(ScoreError::TokenOutOfVocab { token: bad, vocab });
    }
    // Never more context than the text needs (the KV cache is sized by it).
    let ctx = options
        .ctx
        .clamp(2, model.config().context_length.max(2))
        .min(tokens.len());
    check_base(model, tokens, ctx, &base)?;
    let start = Instant::now();
    let mut positions = Vec::with_capacity(tokens.len());
    let mut top = options
        .record_top_k
        .map(|k| record::TopTokens::new(k, vocab));
    if let Some(out) = options.logits_out.as_mut() {
        out.write_all(&npy::header(tokens.len(), vocab))?;
    }
    let mut row_bytes = Vec::new();
    let mut session = model.new_session_batched(ctx, SCORE_BATCH);
    let mut base_session = match &base {
        Base::Live(b) => Some(b.new_session_batched(ctx, SCORE_BATCH)),
        _ => None,
    };
    for (c, chunk) in tokens.chunks(ctx).enumerate() {
        let chunk_start = c * ctx;
        for (b, batch) in chunk.chunks(SCORE_BATCH).enumerate() {
            let pos = b * SCORE_BATCH;
            model.forward_batch(&mut session, batch, pos, Logits::All)?;
            let base_rows = match (&base, base_session.as_mut()) {
                (Base::Live(bm), Some(bs)) => {
                    bm.forward_batch(bs, batch, pos, Logits::All)?;
                    Some(bs.logit_rows())
                }
                _ => None,
            };
            for (r, row) in session.logit_rows().chunks_exact(vocab).enumerate() {
                if let Some(out) = options.logits_out.as_mut() {
                    npy::write_row(*out, row, &mut row_bytes)?;
                }
                // The last token of a chunk predicts nothing within it.
                let index = chunk_start + pos + r + 1;
                let Some(&next) = chunk.get(pos + r + 1) else {
                    continue;
                };
                // Ids were checked against the vocabulary above.
                let nll = log_sum_exp(row) - f64::from(row[next as usize]);
                if let Some(t) = top.as_mut() {
                    t.push(row, nll);
                }
                let (kld, same, base_nll) = match (&base, base_rows) {
                    (Base::Live(_), Some(rows)) => {
                        // The base has the model's vocabulary size (check_base).
                        let brow = &rows[r * vocab..(r + 1) * vocab];
                        let bnll = log_sum_exp(brow) - f64::from(brow[next as usize]);
                        (
                            Some(kl_full(brow, row)),
                            Some(argmax(brow) == argmax(row)),
                            Some(bnll),
                        )
                    }
                    (Base::Recorded(rec), _) => {
                        let i = positions.len();
                        (
                            rec.kld(i, row),
                            rec.top1(i).map(|b| b == argmax(row)),
                            rec.nll(i),
                        )
                    }
                    _ => (None, None, None),
                };
                positions.push(Position {
                    index,
                    nll,
                    base_nll,
                    kld,
                    same_top1: same,
                });
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(summarize(positions, tokens.len(), ctx, seconds, &base, top))
}

/// Positions scored when `n_tokens` are cut into chunks of `ctx` (each chunk's first
/// token is context only).
fn scored_positions(n_tokens: usize, ctx: usize) -> usize {
    n_tokens - n_tokens.div_ceil(ctx.max(1))
}

/// The base must see the same tokens with the same vocabulary, cut into the same chunks.
fn check_base(
    model: &Model<'_>,
    tokens: &[u32],
    ctx: usize,
    base: &Base<'_, '_>,
) -> Result<(), ScoreError> {
    let vocab = model.config().vocab;
    match base {
        Base::None => Ok(()),
        Base::Live(b) if b.config().vocab != vocab => Err(ScoreError::BaseMismatch {
            what: "vocabulary size",
            detail: format!("{} tokens, the model has {vocab}", b.config().vocab),
        }),
        Base::Live(_) => Ok(()),
        Base::Recorded(r) => {
            r.matches(tokens, vocab)
                .map_err(|detail| ScoreError::BaseMismatch {
                    what: "record",
                    detail,
                })?;
            let want = scored_positions(tokens.len(), ctx);
            if r.positions() != want {
                return Err(ScoreError::BaseMismatch {
                    what: "record",
                    detail: format!(
                        "it holds {} scored positions; {} tokens in chunks of {ctx} give {want} (record it with the same context, it was made with {})",
                        r.positions(),
                        tokens.len(),
                        r.ctx
                    ),
                });
            }
            Ok(())
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(at).copied().unwrap_or(f64::NAN)
}

fn summarize(
    positions: Vec<Position>,
    tokens: usize,
    ctx: usize,
    seconds: f64,
    base: &Base<'_, '_>,
    top: Option<record::TopTokens>,
) -> Score {
    let n = positions.len().max(1) as f64;
    let mean_nll = positions.iter().map(|p| p.nll).sum::<f64>() / n;
    let comparison = match base {
        Base::None => None,
        _ => {
            let mut klds: Vec<f64> = positions.iter().filter_map(|p| p.kld).collect();
            klds.sort_by(f64::total_cmp);
            let same = positions
                .iter()
                .filter(|p| p.same_top1 == Some(true))
                .count();
            let base_nll = positions.iter().filter_map(|p| p.base_nll).sum::<f64>() / n;
            let mut worst: Vec<Divergence> = positions
                .iter()
                .filter_map(|p| {
                    Some(Divergence {
                        token: p.index,
                        kld: p.kld?,
                    })
                })
                .collect();
            worst.sort_by(|a, b| b.kld.total_cmp(&a.kld).then(a.token.cmp(&b.token)));
            worst.truncate(5);
            Some(BaseComparison {
                mean_kld: klds.iter().sum::<f64>() / klds.len().max(1) as f64,
                median_kld: percentile(&klds, 0.5),
                p99_kld: percentile(&klds, 0.99),
                max_kld: klds.last().copied().unwrap_or(f64::NAN),
                same_top1: same as f64 / n,
                base_perplexity: base_nll.exp(),
                perplexity_ratio: (mean_nll - base_nll).exp(),
                worst,
            })
        }
    };
    Score {
        tokens,
        ctx,
        scored: positions.len(),
        mean_nll,
        perplexity: mean_nll.exp(),
        seconds,
        tokens_per_second: if seconds > 0.0 {
            tokens as f64 / seconds
        } else {
            0.0
        },
        base: comparison,
        positions,
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_of_equal_distributions_is_zero_and_grows_with_difference() {
        let p = [1.0f32, 2.0, 3.0];
        assert!(kl_full(&p, &p).abs() < 1e-12);
        // Adding a constant to every logit is the same distribution.
        assert!(kl_full(&p, &[11.0, 12.0, 13.0]).abs() < 1e-12);
        let near = kl_full(&p, &[1.0, 2.0, 3.1]);
        let far = kl_full(&p, &[3.0, 2.0, 1.0]);
        assert!(near > 0.0 && far > near * 10.0, "{near} {far}");
        // A two-token example by hand: p = (0.5, 0.5), q = (0.25, 0.75).
        let q = [0.0f32, (3.0f32).ln()];
        let want = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!((kl_full(&[0.0, 0.0], &q) - want).abs() < 1e-7);
    }

    #[test]
    fn chunks_score_all_but_their_first_token() {
        assert_eq!(scored_positions(10, 2048), 9);
        assert_eq!(scored_positions(10, 5), 8);
        assert_eq!(scored_positions(11, 5), 8);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 98.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
