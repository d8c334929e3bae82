//! A recorded base (`score --record-base`, policy `quality.base_record`): what a later
//! run needs from the base model so that CI does not have to keep the F16 file — for every
//! scored position the base's top-k logits (ids and values), the log of its softmax
//! normalizer and its negative log-likelihood of the actual next token — together with the
//! text's token ids, the text's sha256 and the base model's fingerprint. A comparison with
//! a record made from another text or another tokenization is an error, never a silent
//! number.
//!
//! KL divergence from a record: `KL(base || model) ≈ Σ_top p_i (log p_i - log q_i)
//! + p_rest (log p_rest - log q_rest)`, the base's top-k tokens exactly and the rest of
//! its mass as one bucket (the same approximation `llama-perplexity` makes when it stores
//! only part of the distribution). The file is JSON with base64 little-endian arrays; a
//! Python script writes the same format from llama.cpp (`scripts/llama-score-reference.py`).

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The format name and version in every record.
pub const FORMAT: &str = "gguf-gate-base-record";
pub const VERSION: u32 = 1;
/// Top tokens per position `score --record-base` keeps.
pub const RECORD_TOP_K_DEFAULT: usize = 16;
/// Records larger than this are refused.
pub const MAX_RECORD_BYTES: u64 = 256 << 20;

/// The top tokens of every scored position, collected while scoring.
#[derive(Clone, Debug, Default)]
pub struct TopTokens {
    k: usize,
    vocab: usize,
    pub ids: Vec<u32>,
    pub logits: Vec<f32>,
    pub log_norm: Vec<f32>,
    pub nll: Vec<f32>,
    /// Scratch for the selection, reused across positions.
    order: Vec<u32>,
}

impl TopTokens {
    pub fn new(k: usize, vocab: usize) -> TopTokens {
        TopTokens {
            k: k.clamp(1, vocab.max(1)),
            vocab,
            ..TopTokens::default()
        }
    }

    /// Keep one position's top-k (by logit, ties to the lower id), normalizer and NLL.
    pub fn push(&mut self, row: &[f32], nll: f64) {
        let order = &mut self.order;
        order.clear();
        order.extend(0..row.len() as u32);
        let key = |i: &u32| row.get(*i as usize).copied().unwrap_or(f32::NEG_INFINITY);
        let by_logit = |a: &u32, b: &u32| key(b).total_cmp(&key(a)).then(a.cmp(b));
        // `new` keeps k >= 1; the guard keeps a default (k = 0) from underflowing.
        let k = self.k.min(order.len());
        if k > 0 && k < order.len() {
            order.select_nth_unstable_by(k - 1, by_logit);
        }
        let top = &mut order[..k];
        top.sort_by(by_logit);
        self.logits.extend(top.iter().map(key));
        self.ids.extend_from_slice(top);
        self.log_norm.push(super::log_sum_exp(row) as f32);
        self.nll.push(nll as f32);
    }
}

/// A base, recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BaseRecord {
    pub format: String,
    pub version: u32,
    /// Who wrote it (`gguf-gate 0.1.0`, `llama-cpp-python 0.3.36`).
    pub producer: String,
    pub base_fingerprint: String,
    pub text_sha256: String,
    /// The text's token ids (BOS included when the model adds one).
    pub tokens: Vec<u32>,
    pub n_vocab: usize,
    pub ctx: usize,
    pub top_k: usize,
    /// base64 of u32 LE, `positions × top_k`.
    pub top_ids: String,
    /// base64 of f32 LE, `positions × top_k`.
    pub top_logits: String,
    /// base64 of f32 LE, `positions`: log Σ exp(logits).
    pub log_norm: String,
    /// base64 of f32 LE, `positions`: the base's NLL of the next token.
    pub nll: String,
    #[serde(skip)]
    decoded: Decoded,
}

#[derive(Clone, Debug, Default)]
struct Decoded {
    ids: Vec<u32>,
    logits: Vec<f32>,
    log_norm: Vec<f32>,
    nll: Vec<f32>,
}

fn b64<T: Copy>(values: &[T], bytes: impl Fn(T) -> [u8; 4]) -> String {
    let raw: Vec<u8> = values.iter().flat_map(|&v| bytes(v)).collect();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn unb64(field: &str, text: &str) -> Result<Vec<[u8; 4]>, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("{field}: not base64: {e}"))?;
    if raw.len() % 4 != 0 {
        return Err(format!(
            "{field}: {} bytes is not a whole number of 4-byte values",
            raw.len()
        ));
    }
    Ok(raw
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect())
}

impl BaseRecord {
    /// A record of `top` (from scoring the base on `tokens`).
    pub fn new(
        top: &TopTokens,
        tokens: &[u32],
        base_fingerprint: String,
        text_sha256: String,
        ctx: usize,
    ) -> BaseRecord {
        BaseRecord {
            format: FORMAT.into(),
            version: VERSION,
            producer: format!("gguf-gate {}", env!("CARGO_PKG_VERSION")),
            base_fingerprint,
            text_sha256,
            tokens: tokens.to_vec(),
            n_vocab: top.vocab,
            ctx,
            top_k: top.k,
            top_ids: b64(&top.ids, u32::to_le_bytes),
            top_logits: b64(&top.logits, f32::to_le_bytes),
            log_norm: b64(&top.log_norm, f32::to_le_bytes),
            nll: b64(&top.nll, f32::to_le_bytes),
            decoded: Decoded::default(),
        }
    }

    /// Read and validate a record file (bounded; every array's length and every id
    /// checked, so later lookups cannot go out of range).
    pub fn read(path: &Path) -> Result<BaseRecord, String> {
        let bytes = crate::input::read_bounded(path, MAX_RECORD_BYTES, "base record")
            .map_err(|e| e.to_string())?;
        let mut r: BaseRecord = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a base record: {e}", path.display()))?;
        r.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(r)
    }

    fn validate(&mut self) -> Result<(), String> {
        if self.format != FORMAT || self.version != VERSION {
            return Err(format!(
                "format {:?} version {} (expected {FORMAT:?} version {VERSION})",
                self.format, self.version
            ));
        }
        if self.top_k == 0 || self.n_vocab == 0 || self.tokens.len() < 2 {
            return Err("top_k, n_vocab and the tokens must not be empty".into());
        }
        let ids: Vec<u32> = unb64("top_ids", &self.top_ids)?
            .into_iter()
            .map(u32::from_le_bytes)
            .collect();
        let f32s = |field: &str, text: &str| -> Result<Vec<f32>, String> {
            Ok(unb64(field, text)?
                .into_iter()
                .map(f32::from_le_bytes)
                .collect())
        };
        let (logits, log_norm, nll) = (
            f32s("top_logits", &self.top_logits)?,
            f32s("log_norm", &self.log_norm)?,
            f32s("nll", &self.nll)?,
        );
        let positions = log_norm.len();
        let expected = positions
            .checked_mul(self.top_k)
            .ok_or("too many positions")?;
        if ids.len() != expected || logits.len() != expected || nll.len() != positions {
            return Err(format!(
                "{positions} positions need {expected} top ids and logits and {positions} NLLs; found {}, {} and {}",
                ids.len(),
                logits.len(),
                nll.len()
            ));
        }
        if let Some(bad) = ids
            .iter()
            .chain(&self.tokens)
            .find(|&&i| i as usize >= self.n_vocab)
        {
            return Err(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.n_vocab
            ));
        }
        if !logits
            .iter()
            .chain(&log_norm)
            .chain(&nll)
            .all(|v| v.is_finite())
        {
            return Err("non-finite values".into());
        }
        self.decoded = Decoded {
            ids,
            logits,
            log_norm,
            nll,
        };
        Ok(())
    }

    /// The recorded top-k token ids and their logits at position `i` (after `read`).
    pub fn top(&self, i: usize) -> Option<(&[u32], &[f32])> {
        let span = i.checked_mul(self.top_k)?..(i + 1).checked_mul(self.top_k)?;
        Some((
            self.decoded.ids.get(span.clone())?,
            self.decoded.logits.get(span)?,
        ))
    }

    /// Scored positions in the record (after `read`).
    pub fn positions(&self) -> usize {
        self.decoded.log_norm.len()
    }

    /// The record must be of these tokens and this vocabulary size.
    pub fn matches(&self, tokens: &[u32], vocab: usize) -> Result<(), String> {
        if self.n_vocab != vocab {
            return Err(format!(
                "it was recorded with a vocabulary of {} tokens, the model has {vocab}",
                self.n_vocab
            ));
        }
        if self.tokens != tokens {
            let at = self
                .tokens
                .iter()
                .zip(tokens)
                .position(|(a, b)| a != b)
                .unwrap_or(self.tokens.len().min(tokens.len()));
            return Err(format!(
                "it was recorded on other tokens ({} vs {} tokens, first difference at {at}): another text or tokenizer",
                self.tokens.len(),
                tokens.len()
            ));
        }
        Ok(())
    }

    /// The base's top-1 id at scored position `i`.
    pub fn top1(&self, i: usize) -> Option<u32> {
        self.decoded.ids.get(i * self.top_k).copied()
    }

    /// The base's NLL at position `i`.
    pub fn nll(&self, i: usize) -> Option<f64> {
        self.decoded.nll.get(i).map(|&v| f64::from(v))
    }

    /// `KL(base || model)` at position `i` from the base's top-k and the model's full row.
    pub fn kld(&self, i: usize, model_row: &[f32]) -> Option<f64> {
        let k = self.top_k;
        let ids = self.decoded.ids.get(i * k..(i + 1) * k)?;
        let logits = self.decoded.logits.get(i * k..(i + 1) * k)?;
        let log_norm = f64::from(*self.decoded.log_norm.get(i)?);
        let model_norm = super::log_sum_exp(model_row);
        let (mut kl, mut p_top, mut q_top) = (0.0f64, 0.0f64, 0.0f64);
        for (&id, &l) in ids.iter().zip(logits) {
            let log_p = f64::from(l) - log_norm;
            let log_q = f64::from(*model_row.get(id as usize)?) - model_norm;
            kl += log_p.exp() * (log_p - log_q);
            p_top += log_p.exp();
            q_top += log_q.exp();
        }
        let (p_rest, q_rest) = ((1.0 - p_top).max(0.0), (1.0 - q_top).max(1e-12));
        if p_rest > 1e-12 {
            kl += p_rest * (p_rest.ln() - q_rest.ln());
        }
        Some(kl.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_of(rows: &[Vec<f32>], tokens: &[u32], k: usize) -> BaseRecord {
        let mut top = TopTokens::new(k, rows[0].len());
        for (row, &next) in rows.iter().zip(&tokens[1..]) {
            let nll = super::super::log_sum_exp(row) - row[next as usize] as f64;
            top.push(row, nll);
        }
        let mut r = BaseRecord::new(&top, tokens, "sha256-x".into(), "t".into(), 64);
        // Round trip through JSON, as a file would.
        r = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        r.validate().unwrap();
        r
    }

    #[test]
    fn a_full_record_gives_the_exact_kl() {
        let rows = vec![vec![0.1f32, 2.0, -1.0, 0.5], vec![1.0, 1.0, 3.0, -2.0]];
        let model = [0.3f32, 1.5, -0.5, 0.4];
        let r = record_of(&rows, &[0, 1, 2], 4);
        let exact = super::super::kl_full(&rows[0], &model);
        assert!((r.kld(0, &model).unwrap() - exact).abs() < 1e-6);
        assert_eq!(r.top1(1), Some(2));
        assert!((r.nll(0).unwrap() - (super::super::log_sum_exp(&rows[0]) - 2.0)).abs() < 1e-6);
        // A top-2 record approximates it; equal distributions still give 0.
        let r2 = record_of(&rows, &[0, 1, 2], 2);
        assert!(r2.kld(0, &rows[0]).unwrap() < 1e-7);
        assert!((r2.kld(0, &model).unwrap() - exact).abs() < exact);
    }

    #[test]
    fn other_tokens_or_vocabularies_are_refused() {
        let rows = vec![vec![0.0f32; 4], vec![0.0; 4]];
        let r = record_of(&rows, &[0, 1, 2], 2);
        assert!(r.matches(&[0, 1, 2], 4).is_ok());
        assert!(r
            .matches(&[0, 1, 3], 4)
            .unwrap_err()
            .contains("first difference at 2"));
        assert!(r.matches(&[0, 1, 2], 5).unwrap_err().contains("vocabulary"));
    }

    #[test]
    fn malformed_records_are_errors() {
        let rows = vec![vec![0.0f32; 4], vec![0.0; 4]];
        let good = record_of(&rows, &[0, 1, 2], 2);
        let mut bad = good.clone();
        bad.top_ids = "%%%".into();
        assert!(bad.validate().unwrap_err().contains("base64"));
        let mut bad = good.clone();
        bad.nll = b64(&[1.0f32], f32::to_le_bytes);
        assert!(bad.validate().unwrap_err().contains("positions"));
        let mut bad = good.clone();
        bad.tokens = vec![0, 9];
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("outside the vocabulary"));
        let mut bad = good;
        bad.version = 9;
        assert!(bad.validate().is_err());
    }
}
