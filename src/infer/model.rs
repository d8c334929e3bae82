//! A GGUF file seen as a runnable model: hyper-parameters read and cross-checked against
//! every tensor's shape at load time (a GGUF is untrusted input), weights left in the
//! memory map and multiplied in place, and one forward pass per token in the shape of
//! karpathy/llama2.c's `forward()` — with llama.cpp's graph (`src/models/llama.cpp`,
//! `src/models/bitnet.cpp`, `build_attn_mha` in `src/llama-graph.cpp`) as the reference
//! for what is computed and in which precision.

use half::f16;
use rayon::prelude::*;

use super::kernels::{self, Activations, MatRef, RopeMode};
use super::InferError;
use crate::gguf::{GgmlType, GgufFile, Header, TensorInfo};
use crate::quant;

/// Upper bound on any single hyper-parameter that sizes a buffer (dimensions, heads,
/// layers, context): far above any real model, low enough that no product overflows.
const MAX_HPARAM: u64 = 1 << 24;

/// The model families the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `llama`: SmolLM2, TinyLlama, Llama 2/3, Mistral.
    Llama,
    /// `bitnet-b1.58` (bitnet.cpp) and `bitnet` (llama.cpp): sub-norms, squared ReLU.
    Bitnet,
}

/// The feed-forward gate activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnAct {
    /// `silu(gate) * up` (llama's SwiGLU).
    SwiGlu,
    /// `relu(gate)^2 * up` (BitNet b1.58).
    ReluSqr,
}

/// Hyper-parameters, validated against the tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `general.architecture` as written in the file.
    pub architecture: String,
    pub arch: Arch,
    pub n_layer: usize,
    /// Width of the residual stream (`embedding_length`).
    pub dim: usize,
    /// Hidden width of the feed-forward block (`feed_forward_length`).
    pub ffn_dim: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Values of each head that RoPE rotates (`rope.dimension_count`).
    pub rope_dims: usize,
    pub rope_base: f32,
    pub rope_mode: RopeMode,
    pub rms_eps: f32,
    pub vocab: usize,
    pub context_length: usize,
    pub ffn_act: FfnAct,
    /// The logits use the token embedding matrix: `llama` without `output.weight`, and
    /// always for `bitnet` (as llama.cpp's graph does).
    pub tied_embeddings: bool,
}

impl Config {
    /// Width of K and V per token (`n_head_kv * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// A weight matrix with its name (for errors) and optional per-tensor output scale
/// (llama.cpp's `*.scale` tensors for `bitnet`).
struct Linear<'a> {
    m: MatRef<'a>,
    out_scale: Option<f32>,
}

impl Linear<'_> {
    /// `out = W · x` (then `* scale`) with `x` already in this weight's activation format.
    fn apply(&self, act: &Activations, out: &mut [f32]) {
        kernels::matvec(&self.m, act, out);
        if let Some(s) = self.out_scale {
            out.iter_mut().for_each(|v| *v *= s);
        }
    }
}

/// Multiply one input vector by several matrices, quantizing it once per activation
/// format as ggml does per `mul_mat` (Q, K and V usually share one; so do gate and up).
fn project<const N: usize>(x: &[f32], jobs: [(&Linear<'_>, &mut [f32]); N]) {
    let mut formats: Vec<(kernels::VecDotType, Activations)> = Vec::with_capacity(1);
    for (linear, out) in jobs {
        // The loader only accepts types that have a kernel.
        let Some(kind) = kernels::vec_dot_type(linear.m.ty) else {
            out.fill(0.0);
            continue;
        };
        let i = match formats.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                formats.push((kind, kernels::quantize_activations(kind, x)));
                formats.len() - 1
            }
        };
        if let Some((_, act)) = formats.get(i) {
            linear.apply(act, out);
        }
    }
}

struct Layer<'a> {
    attn_norm: Vec<f32>,
    wq: Linear<'a>,
    wk: Linear<'a>,
    wv: Linear<'a>,
    wo: Linear<'a>,
    attn_sub_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    w_gate: Linear<'a>,
    w_up: Linear<'a>,
    w_down: Linear<'a>,
    ffn_sub_norm: Option<Vec<f32>>,
}

/// A loaded model: validated hyper-parameters, norm vectors (small, decoded once) and
/// references to the weight matrices inside the borrowed file's memory map.
pub struct Model<'a> {
    config: Config,
    token_embd: MatRef<'a>,
    layers: Vec<Layer<'a>>,
    output_norm: Vec<f32>,
    output: Linear<'a>,
}

/// Per-generation state: the F16 KV cache and every scratch buffer, allocated once.
pub struct Session {
    capacity: usize,
    filled: usize,
    n_layer: usize,
    kv_dim: usize,
    dim: usize,
    vocab: usize,
    /// `[layer][pos][kv_dim]`, rounded to f16 as llama.cpp's default F16 cache stores it.
    k_cache: Vec<f16>,
    v_cache: Vec<f16>,
    x: Vec<f32>,       // residual stream (dim)
    xb: Vec<f32>,      // normed input of a block (dim)
    att_out: Vec<f32>, // attention output, heads concatenated (n_head * head_dim)
    proj: Vec<f32>,    // output of wo / ffn_down (dim)
    q: Vec<f32>,       // (n_head * head_dim)
    k: Vec<f32>,       // (kv_dim)
    v: Vec<f32>,       // (kv_dim)
    gate: Vec<f32>,    // (ffn_dim)
    up: Vec<f32>,      // (ffn_dim)
    logits: Vec<f32>,  // (vocab)
    rope: Vec<(f32, f32)>,
}

impl Session {
    /// Positions this session can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions filled so far (the next position to run).
    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The logits of the last forward pass that computed them.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }
}

/// Reads typed hyper-parameters under an architecture prefix, naming the key in errors.
struct Keys<'h> {
    header: &'h Header,
    prefix: String,
}

impl Keys<'_> {
    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    fn uint(&self, name: &str, default: Option<u64>) -> Result<usize, InferError> {
        let key = self.key(name);
        let value = match self.header.get(&key) {
            None => default.ok_or(InferError::MissingKey { key: key.clone() })?,
            Some(v) => v.as_u64().ok_or_else(|| InferError::BadKey {
                key: key.clone(),
                problem: format!("has type {}; it must be an unsigned integer", v.type_name()),
            })?,
        };
        if value == 0 || value > MAX_HPARAM {
            return Err(InferError::BadKey {
                key,
                problem: format!("is {value}; it must be between 1 and {MAX_HPARAM}"),
            });
        }
        Ok(value as usize)
    }

    fn float(&self, name: &str, default: Option<f32>) -> Result<f32, InferError> {
        let key = self.key(name);
        let value = match self.header.get(&key) {
            None => default.ok_or(InferError::MissingKey { key: key.clone() })?,
            Some(v) => v.as_f64().ok_or_else(|| InferError::BadKey {
                key: key.clone(),
                problem: format!("has type {}; it must be a number", v.type_name()),
            })? as f32,
        };
        if !(value.is_finite() && value > 0.0) {
            return Err(InferError::BadKey {
                key,
                problem: format!("is {value}; it must be a positive finite number"),
            });
        }
        Ok(value)
    }
}

fn bad_key(key: String, problem: String) -> InferError {
    InferError::BadKey { key, problem }
}

/// Read and cross-check the hyper-parameters (shapes are checked later, per tensor).
fn read_config(header: &Header) -> Result<Config, InferError> {
    let architecture = header
        .architecture()
        .ok_or(InferError::MissingArchitecture)?
        .to_string();
    let (arch, rope_mode, ffn_act) = match architecture.as_str() {
        "llama" => (Arch::Llama, RopeMode::Normal, FfnAct::SwiGlu),
        "bitnet-b1.58" | "bitnet" => (Arch::Bitnet, RopeMode::Neox, FfnAct::ReluSqr),
        _ => return Err(InferError::UnsupportedArchitecture { arch: architecture }),
    };
    let keys = Keys {
        header,
        prefix: architecture.clone(),
    };
    let n_layer = keys.uint("block_count", None)?;
    let dim = keys.uint("embedding_length", None)?;
    let ffn_dim = keys.uint("feed_forward_length", None)?;
    let n_head = keys.uint("attention.head_count", None)?;
    let n_head_kv = keys.uint("attention.head_count_kv", Some(n_head as u64))?;
    let rms_eps = keys.float("attention.layer_norm_rms_epsilon", None)?;
    let rope_base = keys.float("rope.freq_base", Some(10000.0))?;
    let context_length = keys.uint("context_length", None)?;
    if dim % n_head != 0 {
        return Err(bad_key(
            keys.key("attention.head_count"),
            format!("is {n_head}, which does not divide embedding_length {dim}"),
        ));
    }
    let head_dim = dim / n_head;
    if n_head_kv > n_head || n_head % n_head_kv != 0 {
        return Err(bad_key(
            keys.key("attention.head_count_kv"),
            format!("is {n_head_kv}; it must divide attention.head_count {n_head}"),
        ));
    }
    if head_dim % 2 != 0 {
        return Err(bad_key(
            keys.key("attention.head_count"),
            format!("gives an odd head size {head_dim}; RoPE needs pairs"),
        ));
    }
    let rope_dims = keys.uint("rope.dimension_count", Some(head_dim as u64))?;
    if rope_dims > head_dim || rope_dims % 2 != 0 {
        return Err(bad_key(
            keys.key("rope.dimension_count"),
            format!("is {rope_dims}; it must be even and at most the head size {head_dim}"),
        ));
    }
    // llama.cpp's bitnet graphs always project with the embedding matrix (even when a
    // file carries `output.weight`); llama ties only when `output.weight` is absent.
    let tied_embeddings = arch == Arch::Bitnet || header.tensor("output.weight").is_none();
    Ok(Config {
        architecture,
        arch,
        n_layer,
        dim,
        ffn_dim,
        n_head,
        n_head_kv,
        head_dim,
        rope_dims,
        rope_base,
        rope_mode,
        rms_eps,
        // Set by `Model::load` from the embedding matrix.
        vocab: 0,
        context_length,
        ffn_act,
        tied_embeddings,
    })
}

/// The tensor `name`, whose dims must be exactly `expected` (ggml order; trailing 1s allowed).
fn tensor<'h>(
    header: &'h Header,
    name: &str,
    expected: &[u64],
) -> Result<&'h TensorInfo, InferError> {
    let t = header
        .tensor(name)
        .ok_or_else(|| InferError::MissingTensor {
            name: name.to_string(),
        })?;
    let mut dims = t.dims.clone();
    while dims.len() > expected.len() && dims.last() == Some(&1) {
        dims.pop();
    }
    if dims != expected {
        return Err(InferError::BadShape {
            name: name.to_string(),
            expected: expected.to_vec(),
            found: t.dims.clone(),
        });
    }
    Ok(t)
}

/// A `rows x cols` matrix (ggml dims `[cols, rows]`) referenced in place.
fn matrix<'a>(
    file: &'a GgufFile,
    name: &str,
    cols: usize,
    rows: usize,
    for_matmul: bool,
) -> Result<MatRef<'a>, InferError> {
    let t = tensor(&file.header, name, &[cols as u64, rows as u64])?;
    let usable = if for_matmul {
        kernels::supports_matmul(t.ty)
    } else {
        quant::is_supported(t.ty)
    };
    if !usable {
        return Err(InferError::UnsupportedType {
            name: name.to_string(),
            ty: t.ty,
            role: if for_matmul {
                "multiply by (no matrix-vector kernel)"
            } else {
                "decode"
            },
        });
    }
    let bad = |problem: String| InferError::BadTensor {
        name: name.to_string(),
        problem,
    };
    let row_bytes = kernels::row_bytes(t.ty, cols).ok_or_else(|| {
        bad(format!(
            "rows of {cols} elements are not a whole number of {} blocks",
            t.ty
        ))
    })?;
    let data = file.tensor_data(t);
    let body = rows
        .checked_mul(row_bytes)
        .filter(|&n| n <= data.len())
        .ok_or_else(|| bad(format!("{} bytes of data are too few", data.len())))?;
    let scale = if t.ty == GgmlType::I2S {
        let s = data
            .get(body..body + 4)
            .and_then(|b| b.try_into().ok())
            .map(f32::from_le_bytes)
            .ok_or_else(|| bad("the I2_S scale is missing".into()))?;
        if !s.is_finite() {
            return Err(bad(format!("the I2_S scale is {s}")));
        }
        s
    } else {
        1.0
    };
    Ok(MatRef {
        ty: t.ty,
        rows,
        cols,
        row_bytes,
        data: data.get(..body).unwrap_or(&[]),
        scale,
    })
}

/// A vector of `len` values (norm weights), decoded to f32.
fn vector(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>, InferError> {
    let t = tensor(&file.header, name, &[len as u64])?;
    quant::to_f32(t.ty, file.tensor_data(t), len).map_err(|e| InferError::BadTensor {
        name: name.to_string(),
        problem: e.to_string(),
    })
}

/// The projection `name.weight`, with its optional `name.scale` multiplier when the
/// architecture has them (llama.cpp loads `*.scale` for `bitnet` only).
fn linear<'a>(
    file: &'a GgufFile,
    name: &str,
    cols: usize,
    rows: usize,
    scaled: bool,
) -> Result<Linear<'a>, InferError> {
    let m = matrix(file, &format!("{name}.weight"), cols, rows, true)?;
    let scale_name = format!("{name}.scale");
    let out_scale = match file.header.tensor(&scale_name) {
        Some(_) if scaled => vector(file, &scale_name, 1)?.first().copied(),
        _ => None,
    };
    Ok(Linear { m, out_scale })
}

impl<'a> Model<'a> {
    /// Validate the hyper-parameters and every tensor's name, shape and type; keep the
    /// weights in the file's memory map.
    pub fn load(file: &'a GgufFile) -> Result<Model<'a>, InferError> {
        let mut config = read_config(&file.header)?;
        let c = config.clone();
        // The embedding matrix fixes the vocabulary size.
        let embd = file
            .header
            .tensor("token_embd.weight")
            .ok_or(InferError::MissingTensor {
                name: "token_embd.weight".into(),
            })?;
        let vocab = embd.dims.get(1).copied().unwrap_or(0);
        if vocab == 0 || vocab > MAX_HPARAM || embd.dims.len() < 2 {
            return Err(InferError::BadShape {
                name: "token_embd.weight".into(),
                expected: vec![c.dim as u64, vocab.max(1)],
                found: embd.dims.clone(),
            });
        }
        config.vocab = vocab as usize;
        let vocab = config.vocab;
        let token_embd = matrix(file, "token_embd.weight", c.dim, vocab, false)?;
        let q_dim = c.n_head * c.head_dim;
        let kv_dim = c.kv_dim();
        let mut layers = Vec::with_capacity(c.n_layer.min(4096));
        for i in 0..c.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            let bitnet = c.arch == Arch::Bitnet;
            layers.push(Layer {
                attn_norm: vector(file, &p("attn_norm.weight"), c.dim)?,
                wq: linear(file, &p("attn_q"), c.dim, q_dim, bitnet)?,
                wk: linear(file, &p("attn_k"), c.dim, kv_dim, bitnet)?,
                wv: linear(file, &p("attn_v"), c.dim, kv_dim, bitnet)?,
                wo: linear(file, &p("attn_output"), q_dim, c.dim, bitnet)?,
                attn_sub_norm: bitnet
                    .then(|| vector(file, &p("attn_sub_norm.weight"), q_dim))
                    .transpose()?,
                ffn_norm: vector(file, &p("ffn_norm.weight"), c.dim)?,
                w_gate: linear(file, &p("ffn_gate"), c.dim, c.ffn_dim, bitnet)?,
                w_up: linear(file, &p("ffn_up"), c.dim, c.ffn_dim, bitnet)?,
                w_down: linear(file, &p("ffn_down"), c.ffn_dim, c.dim, bitnet)?,
                ffn_sub_norm: bitnet
                    .then(|| vector(file, &p("ffn_sub_norm.weight"), c.ffn_dim))
                    .transpose()?,
            });
        }
        let output_norm = vector(file, "output_norm.weight", c.dim)?;
        let output = if config.tied_embeddings {
            matrix(file, "token_embd.weight", c.dim, vocab, true)?
        } else {
            matrix(file, "output.weight", c.dim, vocab, true)?
        };
        Ok(Model {
            config,
            token_embd,
            layers,
            output_norm,
            output: Linear {
                m: output,
                out_scale: None,
            },
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A session for up to `max_tokens` positions (at most the model's context length).
    pub fn new_session(&self, max_tokens: usize) -> Session {
        let c = &self.config;
        let capacity = max_tokens.min(c.context_length);
        // Bounded in practice: n_layer and kv_dim are backed by tensor data in the file.
        let cache = c
            .n_layer
            .saturating_mul(capacity)
            .saturating_mul(c.kv_dim());
        let q_dim = c.n_head * c.head_dim;
        Session {
            capacity,
            filled: 0,
            n_layer: c.n_layer,
            kv_dim: c.kv_dim(),
            dim: c.dim,
            vocab: c.vocab,
            k_cache: vec![f16::ZERO; cache],
            v_cache: vec![f16::ZERO; cache],
            x: vec![0.0; c.dim],
            xb: vec![0.0; c.dim],
            att_out: vec![0.0; q_dim],
            proj: vec![0.0; c.dim],
            q: vec![0.0; q_dim],
            k: vec![0.0; c.kv_dim()],
            v: vec![0.0; c.kv_dim()],
            gate: vec![0.0; c.ffn_dim],
            up: vec![0.0; c.ffn_dim],
            logits: vec![0.0; c.vocab],
            rope: Vec::with_capacity(c.head_dim / 2),
        }
    }

    /// Run `token` at position `pos` (at most the number of positions already filled:
    /// re-running an earlier position discards everything after it) and return the
    /// logits over the vocabulary.
    pub fn forward<'s>(
        &self,
        s: &'s mut Session,
        token: u32,
        pos: usize,
    ) -> Result<&'s [f32], InferError> {
        self.step(s, token, pos, true)?;
        Ok(&s.logits)
    }

    /// One forward pass; the final norm and the (large) output projection only when
    /// `want_logits` — llama.cpp too skips them for prompt tokens whose logits are unused.
    pub(crate) fn step(
        &self,
        s: &mut Session,
        token: u32,
        pos: usize,
        want_logits: bool,
    ) -> Result<(), InferError> {
        let c = &self.config;
        if (s.n_layer, s.kv_dim, s.dim, s.vocab) != (c.n_layer, c.kv_dim(), c.dim, c.vocab) {
            return Err(InferError::SessionMismatch);
        }
        if token as usize >= c.vocab {
            return Err(InferError::TokenOutOfRange {
                token,
                vocab: c.vocab,
            });
        }
        if pos >= s.capacity || pos > s.filled {
            return Err(InferError::PositionOutOfRange {
                pos,
                filled: s.filled,
                capacity: s.capacity,
            });
        }
        self.embed(token, &mut s.x)?;
        let kv_dim = c.kv_dim();
        let hd = c.head_dim;
        kernels::rope_cache(pos, hd, c.rope_dims, c.rope_base, &mut s.rope);
        for (l, layer) in self.layers.iter().enumerate() {
            // Attention block: xb = rmsnorm(x) * attn_norm; q, k, v projections.
            kernels::rmsnorm(&mut s.xb, &s.x, &layer.attn_norm, c.rms_eps);
            project(
                &s.xb,
                [
                    (&layer.wq, &mut s.q),
                    (&layer.wk, &mut s.k),
                    (&layer.wv, &mut s.v),
                ],
            );
            for head in s.q.chunks_exact_mut(hd).chain(s.k.chunks_exact_mut(hd)) {
                kernels::rope_head(head, &s.rope, c.rope_dims, c.rope_mode);
            }
            // Store k and v at pos, rounded to f16.
            let at = (l * s.capacity + pos) * kv_dim;
            let layer_start = l * s.capacity * kv_dim;
            if let (Some(kc), Some(vc)) = (
                s.k_cache.get_mut(at..at + kv_dim),
                s.v_cache.get_mut(at..at + kv_dim),
            ) {
                for (dst, &src) in kc.iter_mut().zip(&s.k) {
                    *dst = f16::from_f32(src);
                }
                for (dst, &src) in vc.iter_mut().zip(&s.v) {
                    *dst = f16::from_f32(src);
                }
            }
            let span = layer_start..layer_start + (pos + 1) * kv_dim;
            let keys = s.k_cache.get(span.clone()).unwrap_or(&[]);
            let values = s.v_cache.get(span).unwrap_or(&[]);
            self.attention(&s.q, keys, values, pos, &mut s.att_out);
            if let Some(w) = &layer.attn_sub_norm {
                kernels::rmsnorm_in_place(&mut s.att_out, w, c.rms_eps);
            }
            project(&s.att_out, [(&layer.wo, &mut s.proj)]);
            for (x, &p) in s.x.iter_mut().zip(&s.proj) {
                *x += p;
            }

            // Feed-forward block.
            kernels::rmsnorm(&mut s.xb, &s.x, &layer.ffn_norm, c.rms_eps);
            project(
                &s.xb,
                [(&layer.w_gate, &mut s.gate), (&layer.w_up, &mut s.up)],
            );
            match c.ffn_act {
                FfnAct::SwiGlu => {
                    for (g, &u) in s.gate.iter_mut().zip(&s.up) {
                        *g = kernels::silu(*g) * u;
                    }
                }
                FfnAct::ReluSqr => {
                    for (g, &u) in s.gate.iter_mut().zip(&s.up) {
                        let r = g.max(0.0);
                        *g = (r * r) * u;
                    }
                }
            }
            if let Some(w) = &layer.ffn_sub_norm {
                kernels::rmsnorm_in_place(&mut s.gate, w, c.rms_eps);
            }
            project(&s.gate, [(&layer.w_down, &mut s.proj)]);
            for (x, &p) in s.x.iter_mut().zip(&s.proj) {
                *x += p;
            }
        }
        s.filled = pos + 1;
        if want_logits {
            kernels::rmsnorm(&mut s.xb, &s.x, &self.output_norm, c.rms_eps);
            project(&s.xb, [(&self.output, &mut s.logits)]);
        }
        Ok(())
    }

    /// The embedding row of `token`, decoded to f32 (`ggml_get_rows`).
    fn embed(&self, token: u32, out: &mut [f32]) -> Result<(), InferError> {
        let e = &self.token_embd;
        let row = e.row(token as usize);
        let result = if e.ty == GgmlType::I2S {
            quant::dequantize_i2_s_codes(row, e.scale, out)
        } else {
            quant::dequantize(e.ty, row, out)
        };
        result.map_err(|err| InferError::BadTensor {
            name: "token_embd.weight".into(),
            problem: err.to_string(),
        })
    }

    /// llama.cpp's non-flash attention for one query position over `pos + 1` cached
    /// positions: `KQ = K(f16) · Q(f16)` summed in f64, scaled by `1/sqrt(head_dim)`,
    /// softmax, then `V(f16) · softmax(f16)` summed in f64. Heads in parallel; query
    /// head `h` reads KV head `h / (n_head / n_head_kv)`.
    fn attention(&self, q: &[f32], keys: &[f16], values: &[f16], pos: usize, out: &mut [f32]) {
        let c = &self.config;
        let (hd, kv_dim) = (c.head_dim, c.kv_dim());
        let group = c.n_head / c.n_head_kv;
        let kq_scale = 1.0f32 / (hd as f32).sqrt();
        out.par_chunks_mut(hd)
            .zip(q.par_chunks(hd))
            .enumerate()
            .for_each(|(h, (out, qh))| {
                let kv_off = (h / group) * hd;
                let q16: Vec<f32> = qh.iter().map(|&v| kernels::round_f16(v)).collect();
                let mut scores: Vec<f32> = (0..=pos)
                    .map(|t| {
                        let base = t * kv_dim + kv_off;
                        let k = keys.get(base..base + hd).unwrap_or(&[]);
                        let dot: f64 = k
                            .iter()
                            .zip(&q16)
                            .map(|(kv, &qv)| f64::from(kv.to_f32() * qv))
                            .sum();
                        (dot as f32) * kq_scale
                    })
                    .collect();
                kernels::softmax(&mut scores);
                let weights: Vec<f32> = scores.iter().map(|&p| kernels::round_f16(p)).collect();
                let mut acc = vec![0.0f64; hd];
                for (t, &w) in weights.iter().enumerate() {
                    let base = t * kv_dim + kv_off;
                    let v = values.get(base..base + hd).unwrap_or(&[]);
                    for (a, vv) in acc.iter_mut().zip(v) {
                        *a += f64::from(vv.to_f32() * w);
                    }
                }
                for (o, a) in out.iter_mut().zip(acc) {
                    *o = a as f32;
                }
            });
    }
}
