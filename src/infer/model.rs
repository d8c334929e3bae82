//! A GGUF file seen as a runnable model: hyper-parameters read and cross-checked against
//! every tensor's shape at load time (a GGUF is untrusted input), weights left in the
//! memory map and multiplied in place, and one forward pass over a batch of consecutive
//! tokens in the shape of karpathy/llama2.c's `forward()` — with llama.cpp's graphs
//! (`src/models/{llama,bitnet,qwen2,qwen3,gemma3,phi3}.cpp`, `build_attn_mha` in
//! `src/llama-graph.cpp`) as the reference for what is computed and in which precision.
//!
//! One forward pass serves every family: the per-family pieces are optional parts of a
//! [`Layer`] (biases, Q/K norms, post-norms, sub-norms, fused projections) and settings of
//! the [`Config`] (RoPE pairing and bases, activation, scales, sliding window). A batch
//! runs each weight matrix once over all its tokens (`kernels::matmul`), and every number
//! is computed exactly as for one token at a time, so batching never changes a logit.

use half::f16;

use super::config::{read_config, Arch, Config, FfnAct, MAX_HPARAM};
use super::kernels::attention::{self, KvHead};
use super::kernels::{self, float_ops, Activations, Isa, MatRef, Rope};
use super::team;
use super::InferError;
use crate::gguf::{GgmlType, GgufFile, Header, TensorInfo};
use crate::quant;

/// Tokens a session runs through the layers at once by default.
pub const DEFAULT_BATCH: usize = 64;

/// A weight matrix with its optional bias and per-tensor output scale (llama.cpp's
/// `*.scale` tensors for `bitnet`).
struct Linear<'a> {
    m: MatRef<'a>,
    bias: Option<Vec<f32>>,
    out_scale: Option<f32>,
}

impl Linear<'_> {
    /// `out[t] (+ b) (* scale)` row by row, after the matrix product.
    fn finish(&self, out: &mut [f32]) {
        for row in out.chunks_exact_mut(self.m.rows) {
            if let Some(b) = &self.bias {
                row.iter_mut().zip(b).for_each(|(o, &b)| *o += b);
            }
            if let Some(s) = self.out_scale {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
    }
}

/// What [`project`] works in, kept in the session so that a token allocates nothing:
/// each activation format's quantized rows, and the batched products before they are
/// transposed.
#[derive(Default)]
struct ProjectScratch {
    formats: Vec<(kernels::VecDotType, Vec<Activations>)>,
    by_row: Vec<f32>,
}

/// Multiply every row of `x` (`n` rows of `in` values) by several matrices in one
/// parallel loop, quantizing each row once per activation format as ggml does per
/// `mul_mat` (Q, K and V usually share one; so do gate and up).
fn project<const N: usize>(
    isa: Isa,
    x: &[f32],
    n: usize,
    mut jobs: [(&Linear<'_>, &mut [f32]); N],
    scratch: &mut ProjectScratch,
) {
    let width = x.len() / n.max(1);
    let kinds = jobs
        .each_ref()
        .map(|(linear, _)| kernels::vec_dot_type(linear.m.ty));
    for (j, kind) in kinds.iter().enumerate() {
        let Some(kind) = *kind else { continue };
        if kinds[..j].contains(&Some(kind)) {
            continue;
        }
        let set = match scratch.formats.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                scratch.formats.push((kind, Vec::new()));
                scratch.formats.len() - 1
            }
        };
        let Some((_, acts)) = scratch.formats.get_mut(set) else {
            continue;
        };
        while acts.len() < n {
            acts.push(Activations::F32(Vec::new()));
        }
        for (a, row) in acts.iter_mut().zip(x.chunks_exact(width.max(1)).take(n)) {
            kernels::quantize_activations_into(kind, row, a);
        }
    }
    let formats = &scratch.formats;
    let acts_of = |kind: Option<kernels::VecDotType>| -> &[Activations] {
        kind.and_then(|k| formats.iter().find(|(f, _)| *f == k))
            .and_then(|(_, acts)| acts.get(..n))
            .unwrap_or(&[])
    };
    let mut kind_of_job = kinds.into_iter();
    let products = jobs.each_mut().map(|(linear, out)| {
        let acts = acts_of(kind_of_job.next().flatten());
        if acts.is_empty() {
            // The loader only accepts types that have a kernel.
            out.fill(0.0);
        }
        (&linear.m, acts, &mut **out)
    });
    kernels::matmul_many(products, isa, &mut scratch.by_row);
    for (linear, out) in jobs {
        linear.finish(out);
    }
}

/// Q, K and V: three matrices, or one fused `attn_qkv` (Phi-3) whose output rows are Q,
/// then K, then V.
enum Qkv<'a> {
    Separate {
        q: Linear<'a>,
        k: Linear<'a>,
        v: Linear<'a>,
    },
    Fused(Linear<'a>),
}

/// Gate and up: two matrices, or one fused `ffn_up` (Phi-3) whose first half is the gate.
enum GateUp<'a> {
    Separate { gate: Linear<'a>, up: Linear<'a> },
    Fused(Linear<'a>),
}

struct Layer<'a> {
    attn_norm: Vec<f32>,
    qkv: Qkv<'a>,
    /// Per-head RMS norms of Q and K before RoPE (Qwen3, Gemma 3).
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: Linear<'a>,
    /// BitNet: RMS norm of the attention output before `wo`.
    attn_sub_norm: Option<Vec<f32>>,
    /// Gemma 3: RMS norm of `wo`'s output before the residual add.
    attn_post_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate_up: GateUp<'a>,
    w_down: Linear<'a>,
    ffn_sub_norm: Option<Vec<f32>>,
    ffn_post_norm: Option<Vec<f32>>,
}

/// A loaded model: validated hyper-parameters, norm vectors (small, decoded once) and
/// references to the weight matrices inside the borrowed file's memory map.
pub struct Model<'a> {
    config: Config,
    token_embd: MatRef<'a>,
    layers: Vec<Layer<'a>>,
    output_norm: Vec<f32>,
    output: Linear<'a>,
    /// Per-pair RoPE frequency divisors (`rope_freqs.weight`, Llama 3.x), if any.
    rope_factors: Option<Vec<f32>>,
    /// The instruction set the matrix kernels run on (the results do not depend on it).
    isa: Isa,
}

/// Which logits a forward pass computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (prompt tokens whose logits are unused).
    None,
    /// Those of the last token.
    Last,
    /// Those of every token of the batch (scoring).
    All,
}

/// One token of a batch: which of the session's sequences it belongs to, and its
/// position in that sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub lane: usize,
    pub pos: usize,
    pub token: u32,
}

/// Per-generation state: the F16 KV cache of one or more independent sequences
/// ("lanes", decoded together so that each step reads the weights once for all of them)
/// and every scratch buffer, allocated once.
pub struct Session {
    /// Positions per lane.
    capacity: usize,
    /// Positions filled so far, per lane.
    filled: Vec<usize>,
    /// Tokens run through the layers at once.
    batch: usize,
    n_layer: usize,
    kv_dim: usize,
    dim: usize,
    vocab: usize,
    /// `[layer][pos][kv_dim]`, rounded to f16 as llama.cpp's default F16 cache stores it.
    k_cache: Vec<f16>,
    v_cache: Vec<f16>,
    x: Vec<f32>,       // residual stream [batch][dim]
    xb: Vec<f32>,      // normed input of a block [batch][dim]
    q: Vec<f32>,       // [batch][q_dim]
    k: Vec<f32>,       // [batch][kv_dim]
    v: Vec<f32>,       // [batch][kv_dim]
    qkv: Vec<f32>,     // fused projection output [batch][q_dim + 2 kv_dim] (Phi-3)
    att_out: Vec<f32>, // attention output, heads concatenated [batch][q_dim]
    proj: Vec<f32>,    // output of wo / ffn_down [batch][dim]
    gate: Vec<f32>,    // [batch][ffn_dim]
    up: Vec<f32>,      // [batch][ffn_dim]
    gate_up: Vec<f32>, // fused gate/up output [batch][2 ffn_dim] (Phi-3)
    /// Logits of the last pass: `[rows][vocab]`, one row per token that asked for them.
    logits: Vec<f32>,
    /// The steps of the pass being run, which of them want logits, the projections'
    /// scratch and RoPE's cos/sin (kept so that a token allocates nothing).
    steps: Vec<Step>,
    wanted: Vec<usize>,
    project: ProjectScratch,
    rope: Vec<(f32, f32)>,
}

impl Session {
    /// Positions each lane can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions filled so far in the first lane (the next position to run).
    pub fn len(&self) -> usize {
        self.lane_len(0)
    }

    /// Positions filled so far in `lane` (0 for a lane the session does not have).
    pub fn lane_len(&self, lane: usize) -> usize {
        self.filled.get(lane).copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The logits of the last token the last forward pass computed them for.
    pub fn logits(&self) -> &[f32] {
        let rows = self.logits.len() / self.vocab.max(1);
        let start = rows.saturating_sub(1) * self.vocab;
        self.logits.get(start..).unwrap_or(&[])
    }

    /// Every logit row of the last forward pass (`[rows][vocab]`): one row per token for
    /// [`Logits::All`], one for [`Logits::Last`].
    pub fn logit_rows(&self) -> &[f32] {
        &self.logits
    }
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

/// A vector of `len` values (norm weights, biases), decoded to f32.
fn vector(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>, InferError> {
    let t = tensor(&file.header, name, &[len as u64])?;
    quant::to_f32(t.ty, file.tensor_data(t), len).map_err(|e| InferError::BadTensor {
        name: name.to_string(),
        problem: e.to_string(),
    })
}

/// The vector `name` when the file has it.
fn optional_vector(
    file: &GgufFile,
    name: &str,
    len: usize,
) -> Result<Option<Vec<f32>>, InferError> {
    file.header
        .tensor(name)
        .map(|_| vector(file, name, len))
        .transpose()
}

/// The projection `name.weight` with its bias when the file has one (every family:
/// llama.cpp adds a bias whenever present) and, when `scaled`, its `name.scale`
/// multiplier (llama.cpp loads `*.scale` for `bitnet` only).
fn linear<'a>(
    file: &'a GgufFile,
    name: &str,
    cols: usize,
    rows: usize,
    scaled: bool,
) -> Result<Linear<'a>, InferError> {
    let m = matrix(file, &format!("{name}.weight"), cols, rows, true)?;
    let bias = optional_vector(file, &format!("{name}.bias"), rows)?;
    let scale_name = format!("{name}.scale");
    let out_scale = match file.header.tensor(&scale_name) {
        Some(_) if scaled => vector(file, &scale_name, 1)?.first().copied(),
        _ => None,
    };
    Ok(Linear { m, bias, out_scale })
}

/// Load layer `i`'s tensors for the family `c.arch`.
fn load_layer<'a>(file: &'a GgufFile, c: &Config, i: usize) -> Result<Layer<'a>, InferError> {
    let p = |s: &str| format!("blk.{i}.{s}");
    let (dim, q_dim, kv_dim, hd) = (c.dim, c.q_dim(), c.kv_dim(), c.head_dim);
    let bitnet = c.arch == Arch::Bitnet;
    // llama.cpp applies `*.scale` tensors for bitnet only.
    let scaled = bitnet;
    let fused_qkv = file.header.tensor(&p("attn_qkv.weight")).is_some();
    let qkv = if fused_qkv {
        Qkv::Fused(linear(
            file,
            &p("attn_qkv"),
            dim,
            q_dim + 2 * kv_dim,
            scaled,
        )?)
    } else {
        Qkv::Separate {
            q: linear(file, &p("attn_q"), dim, q_dim, scaled)?,
            k: linear(file, &p("attn_k"), dim, kv_dim, scaled)?,
            v: linear(file, &p("attn_v"), dim, kv_dim, scaled)?,
        }
    };
    let qk_norms = matches!(c.arch, Arch::Qwen3 | Arch::Gemma3);
    let post_norms = c.arch == Arch::Gemma3;
    let gate_up = if c.arch == Arch::Phi3 && file.header.tensor(&p("ffn_gate.weight")).is_none() {
        GateUp::Fused(linear(file, &p("ffn_up"), dim, 2 * c.ffn_dim, scaled)?)
    } else {
        GateUp::Separate {
            gate: linear(file, &p("ffn_gate"), dim, c.ffn_dim, scaled)?,
            up: linear(file, &p("ffn_up"), dim, c.ffn_dim, scaled)?,
        }
    };
    Ok(Layer {
        attn_norm: vector(file, &p("attn_norm.weight"), dim)?,
        qkv,
        q_norm: qk_norms
            .then(|| vector(file, &p("attn_q_norm.weight"), hd))
            .transpose()?,
        k_norm: qk_norms
            .then(|| vector(file, &p("attn_k_norm.weight"), hd))
            .transpose()?,
        wo: linear(file, &p("attn_output"), q_dim, dim, scaled)?,
        attn_sub_norm: bitnet
            .then(|| vector(file, &p("attn_sub_norm.weight"), q_dim))
            .transpose()?,
        attn_post_norm: post_norms
            .then(|| vector(file, &p("post_attention_norm.weight"), dim))
            .transpose()?,
        ffn_norm: vector(file, &p("ffn_norm.weight"), dim)?,
        gate_up,
        w_down: linear(file, &p("ffn_down"), c.ffn_dim, dim, scaled)?,
        ffn_sub_norm: bitnet
            .then(|| vector(file, &p("ffn_sub_norm.weight"), c.ffn_dim))
            .transpose()?,
        ffn_post_norm: post_norms
            .then(|| vector(file, &p("post_ffw_norm.weight"), dim))
            .transpose()?,
    })
}

/// The RoPE frequency factors llama.cpp applies: `rope_freqs.weight` (Llama 3.x), or
/// Phi-3's `rope_factors_short.weight` (the factors for contexts within the training
/// length, which is all a probe uses).
fn rope_factors(file: &GgufFile, c: &Config) -> Result<Option<Vec<f32>>, InferError> {
    let pairs = c.rope_dims / 2;
    if let Some(f) = optional_vector(file, "rope_freqs.weight", pairs)? {
        return Ok(Some(f));
    }
    if c.arch == Arch::Phi3 {
        return optional_vector(file, "rope_factors_short.weight", pairs);
    }
    Ok(None)
}

impl<'a> Model<'a> {
    /// Validate the hyper-parameters and every tensor's name, shape and type; keep the
    /// weights in the file's memory map.
    pub fn load(file: &'a GgufFile) -> Result<Model<'a>, InferError> {
        let mut config = read_config(&file.header)?;
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
                expected: vec![config.dim as u64, vocab.max(1)],
                found: embd.dims.clone(),
            });
        }
        config.vocab = vocab as usize;
        let c = &config;
        let token_embd = matrix(file, "token_embd.weight", c.dim, c.vocab, false)?;
        let layers = (0..c.n_layer)
            .map(|i| load_layer(file, c, i))
            .collect::<Result<Vec<_>, _>>()?;
        let output_norm = vector(file, "output_norm.weight", c.dim)?;
        let output_name = if c.tied_embeddings {
            "token_embd.weight"
        } else {
            "output.weight"
        };
        let output = matrix(file, output_name, c.dim, c.vocab, true)?;
        // Qwen2 may carry a bias on the logits.
        let output_bias = if c.arch == Arch::Qwen2 {
            optional_vector(file, "output.bias", c.vocab)?
        } else {
            None
        };
        let rope_factors = rope_factors(file, c)?;
        Ok(Model {
            token_embd,
            layers,
            output_norm,
            output: Linear {
                m: output,
                bias: output_bias,
                out_scale: None,
            },
            rope_factors,
            config,
            isa: Isa::selected(),
        })
    }

    /// Run the matrix kernels on `isa` instead (if this CPU can: otherwise `None`).
    pub fn with_isa(mut self, isa: Isa) -> Option<Model<'a>> {
        isa.available().then(|| {
            self.isa = isa;
            self
        })
    }

    /// The instruction set the matrix kernels run on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A session for up to `max_tokens` positions (at most the model's context length),
    /// running up to [`DEFAULT_BATCH`] tokens through the layers at once.
    pub fn new_session(&self, max_tokens: usize) -> Session {
        self.new_session_batched(max_tokens, DEFAULT_BATCH)
    }

    /// A session for up to `max_tokens` positions running `batch` tokens at once.
    pub fn new_session_batched(&self, max_tokens: usize, batch: usize) -> Session {
        self.new_session_lanes(max_tokens, batch, 1)
    }

    /// A session of `lanes` independent sequences of up to `max_tokens` positions each,
    /// running `batch` tokens (of any lanes) at once.
    pub fn new_session_lanes(&self, max_tokens: usize, batch: usize, lanes: usize) -> Session {
        let c = &self.config;
        let capacity = max_tokens.min(c.context_length);
        let lanes = lanes.max(1);
        let batch = batch.clamp(1, capacity.saturating_mul(lanes).max(1));
        // Bounded in practice: n_layer and kv_dim are backed by tensor data in the file,
        // and the callers' lanes are a policy's handful of prompts.
        let cache = c
            .n_layer
            .saturating_mul(lanes)
            .saturating_mul(capacity)
            .saturating_mul(c.kv_dim());
        let (q_dim, kv_dim) = (c.q_dim(), c.kv_dim());
        let fused_qkv = self.layers.iter().any(|l| matches!(l.qkv, Qkv::Fused(_)));
        let fused_up = self
            .layers
            .iter()
            .any(|l| matches!(l.gate_up, GateUp::Fused(_)));
        Session {
            capacity,
            filled: vec![0; lanes],
            batch,
            n_layer: c.n_layer,
            kv_dim,
            dim: c.dim,
            vocab: c.vocab,
            k_cache: vec![f16::ZERO; cache],
            v_cache: vec![f16::ZERO; cache],
            x: vec![0.0; batch * c.dim],
            xb: vec![0.0; batch * c.dim],
            q: vec![0.0; batch * q_dim],
            k: vec![0.0; batch * kv_dim],
            v: vec![0.0; batch * kv_dim],
            qkv: vec![
                0.0;
                if fused_qkv {
                    batch * (q_dim + 2 * kv_dim)
                } else {
                    0
                }
            ],
            att_out: vec![0.0; batch * q_dim],
            proj: vec![0.0; batch * c.dim],
            gate: vec![0.0; batch * c.ffn_dim],
            up: vec![0.0; batch * c.ffn_dim],
            gate_up: vec![0.0; if fused_up { batch * 2 * c.ffn_dim } else { 0 }],
            logits: Vec::new(),
            steps: Vec::with_capacity(batch),
            wanted: Vec::with_capacity(batch),
            project: ProjectScratch::default(),
            rope: Vec::new(),
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
        self.forward_batch(s, &[token], pos, Logits::Last)?;
        Ok(s.logits())
    }

    /// Run `tokens` at positions `start..start + tokens.len()` (`start` at most the number
    /// of positions filled), `session.batch` tokens at a time, computing the `logits` asked
    /// for (`Logits::All`: one row per token, in [`Session::logit_rows`]).
    pub fn forward_batch(
        &self,
        s: &mut Session,
        tokens: &[u32],
        start: usize,
        logits: Logits,
    ) -> Result<(), InferError> {
        let mut steps = std::mem::take(&mut s.steps);
        steps.clear();
        steps.extend(tokens.iter().enumerate().map(|(i, &token)| Step {
            lane: 0,
            pos: start.saturating_add(i),
            token,
        }));
        let result = self.forward_steps(s, &steps, logits);
        s.steps = steps;
        result
    }

    /// Run `steps`, tokens of any of the session's lanes, `session.batch` at a time. The
    /// steps of one lane must be at consecutive positions, the first at most the
    /// positions that lane has filled (an earlier one discards the rest of the lane).
    /// `Logits::Last` computes the logits of each lane's last step, `Logits::All` of every
    /// step: one row per such step, in step order, in [`Session::logit_rows`]. A token's
    /// results do not depend on the other steps of its batch.
    pub fn forward_steps(
        &self,
        s: &mut Session,
        steps: &[Step],
        logits: Logits,
    ) -> Result<(), InferError> {
        let c = &self.config;
        if (s.n_layer, s.kv_dim, s.dim, s.vocab) != (c.n_layer, c.kv_dim(), c.dim, c.vocab) {
            return Err(InferError::SessionMismatch);
        }
        if let Some(step) = steps.iter().find(|st| st.token as usize >= c.vocab) {
            return Err(InferError::TokenOutOfRange {
                token: step.token,
                vocab: c.vocab,
            });
        }
        // Each lane's steps follow on from what it holds, one position at a time.
        for (i, step) in steps.iter().enumerate() {
            let previous = steps[..i].iter().rev().find(|p| p.lane == step.lane);
            let filled = s.filled.get(step.lane).copied();
            let fits = match (previous, filled) {
                (_, None) => false,
                (Some(p), _) => p.pos.checked_add(1) == Some(step.pos),
                (None, Some(f)) => step.pos <= f,
            };
            if !fits || step.pos >= s.capacity {
                return Err(InferError::PositionOutOfRange {
                    pos: step.pos,
                    filled: filled.unwrap_or(0),
                    capacity: s.capacity,
                });
            }
        }
        s.logits.clear();
        let mut wanted = std::mem::take(&mut s.wanted);
        let mut result = Ok(());
        for (c, chunk) in steps.chunks(s.batch.max(1)).enumerate() {
            let offset = c * s.batch.max(1);
            wanted.clear();
            wanted.extend((0..chunk.len()).filter(|&i| match logits {
                Logits::None => false,
                Logits::All => true,
                Logits::Last => {
                    let lane = chunk[i].lane;
                    steps[offset + i + 1..]
                        .iter()
                        .all(|later| later.lane != lane)
                }
            }));
            result = self.run_chunk(s, chunk, &wanted);
            if result.is_err() {
                break;
            }
        }
        s.wanted = wanted;
        result
    }

    /// One batch of at most `s.batch` steps through every layer, then the logits of the
    /// steps listed in `wanted`, appended to `s.logits`.
    fn run_chunk(
        &self,
        s: &mut Session,
        steps: &[Step],
        wanted: &[usize],
    ) -> Result<(), InferError> {
        let c = &self.config;
        let n = steps.len();
        let dim = c.dim;
        for (t, step) in steps.iter().enumerate() {
            self.embed(step.token, &mut s.x[t * dim..(t + 1) * dim])?;
        }
        for (l, layer) in self.layers.iter().enumerate() {
            self.attention_block(s, l, layer, steps);
            // Feed-forward block.
            for (xb, x) in s.xb[..n * dim]
                .chunks_exact_mut(dim)
                .zip(s.x[..n * dim].chunks_exact(dim))
            {
                kernels::rmsnorm(xb, x, &layer.ffn_norm, c.rms_eps);
            }
            self.feed_forward(s, layer, n);
            residual_add(
                &mut s.x[..n * dim],
                &mut s.proj[..n * dim],
                dim,
                &layer.ffn_post_norm,
                c.rms_eps,
            );
        }
        for step in steps {
            if let Some(filled) = s.filled.get_mut(step.lane) {
                *filled = step.pos + 1;
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let first = s.logits.len();
        s.logits.resize(first + wanted.len() * c.vocab, 0.0);
        // The wanted rows, normed, packed at the front of `xb`.
        for (j, &t) in wanted.iter().enumerate() {
            let (Some(xb), Some(x)) = (
                s.xb.get_mut(j * dim..(j + 1) * dim),
                s.x.get(t * dim..(t + 1) * dim),
            ) else {
                continue;
            };
            kernels::rmsnorm(xb, x, &self.output_norm, c.rms_eps);
        }
        let normed = &s.xb[..wanted.len() * dim];
        project(
            self.isa,
            normed,
            wanted.len(),
            [(&self.output, &mut s.logits[first..])],
            &mut s.project,
        );
        if let Some(cap) = c.logit_softcap {
            // ggml_scale(1/c), ggml_tanh, ggml_scale(c).
            let inv = 1.0 / cap;
            s.logits[first..]
                .iter_mut()
                .for_each(|v| *v = kernels::math::tanhf(*v * inv) * cap);
        }
        Ok(())
    }

    /// The attention block of layer `l` for the tokens of `steps`: norm, Q/K/V, Q/K
    /// norms, RoPE, the KV cache, attention, the output projection and the residual add.
    fn attention_block(&self, s: &mut Session, l: usize, layer: &Layer<'_>, steps: &[Step]) {
        let n = steps.len();
        let c = &self.config;
        let (dim, q_dim, kv_dim, hd) = (c.dim, c.q_dim(), c.kv_dim(), c.head_dim);
        for (xb, x) in s.xb[..n * dim]
            .chunks_exact_mut(dim)
            .zip(s.x[..n * dim].chunks_exact(dim))
        {
            kernels::rmsnorm(xb, x, &layer.attn_norm, c.rms_eps);
        }
        match &layer.qkv {
            Qkv::Separate { q, k, v } => project(
                self.isa,
                &s.xb[..n * dim],
                n,
                [
                    (q, &mut s.q[..n * q_dim]),
                    (k, &mut s.k[..n * kv_dim]),
                    (v, &mut s.v[..n * kv_dim]),
                ],
                &mut s.project,
            ),
            Qkv::Fused(w) => {
                let width = q_dim + 2 * kv_dim;
                project(
                    self.isa,
                    &s.xb[..n * dim],
                    n,
                    [(w, &mut s.qkv[..n * width])],
                    &mut s.project,
                );
                for (t, row) in s.qkv[..n * width].chunks_exact(width).enumerate() {
                    s.q[t * q_dim..(t + 1) * q_dim].copy_from_slice(&row[..q_dim]);
                    s.k[t * kv_dim..(t + 1) * kv_dim].copy_from_slice(&row[q_dim..q_dim + kv_dim]);
                    s.v[t * kv_dim..(t + 1) * kv_dim].copy_from_slice(&row[q_dim + kv_dim..]);
                }
            }
        }
        // Per-head norms, then RoPE at each token's position.
        let swa = c.swa_layers.get(l).copied().unwrap_or(false);
        let rope = Rope {
            n_dims: c.rope_dims,
            base: if swa { c.rope_base_swa } else { c.rope_base },
            freq_scale: if swa { 1.0 } else { c.rope_freq_scale },
            factors: self.rope_factors.as_deref(),
            mscale: c.rope_attn_factor,
            mode: c.rope_mode,
        };
        let mut cache = std::mem::take(&mut s.rope);
        for (t, step) in steps.iter().enumerate() {
            kernels::rope_cache(step.pos, hd, &rope, &mut cache);
            let q = &mut s.q[t * q_dim..(t + 1) * q_dim];
            let k = &mut s.k[t * kv_dim..(t + 1) * kv_dim];
            for (head, norm) in q
                .chunks_exact_mut(hd)
                .map(|h| (h, &layer.q_norm))
                .chain(k.chunks_exact_mut(hd).map(|h| (h, &layer.k_norm)))
            {
                if let Some(w) = norm {
                    kernels::rmsnorm_in_place(head, w, c.rms_eps);
                }
                kernels::rope_head(head, &cache, c.rope_dims, c.rope_mode);
            }
        }
        s.rope = cache;
        // Store K and V at their lanes' positions, rounded to f16.
        let lane_span = s.capacity * kv_dim;
        let layer_span = s.filled.len() * lane_span;
        let layer_cache = l * layer_span..(l + 1) * layer_span;
        for (t, step) in steps.iter().enumerate() {
            let at = layer_cache.start + step.lane * lane_span + step.pos * kv_dim;
            let (Some(kc), Some(vc)) = (
                s.k_cache.get_mut(at..at + kv_dim),
                s.v_cache.get_mut(at..at + kv_dim),
            ) else {
                continue;
            };
            for (dst, &src) in kc.iter_mut().zip(&s.k[t * kv_dim..(t + 1) * kv_dim]) {
                *dst = f16::from_f32(src);
            }
            for (dst, &src) in vc.iter_mut().zip(&s.v[t * kv_dim..(t + 1) * kv_dim]) {
                *dst = f16::from_f32(src);
            }
        }
        let keys = s.k_cache.get(layer_cache.clone()).unwrap_or(&[]);
        let values = s.v_cache.get(layer_cache).unwrap_or(&[]);
        let window = if swa { c.sliding_window } else { None };
        self.attention(
            &s.q[..n * q_dim],
            LayerCache {
                keys,
                values,
                lane_span,
            },
            steps,
            window,
            &mut s.att_out[..n * q_dim],
        );
        if let Some(w) = &layer.attn_sub_norm {
            for row in s.att_out[..n * q_dim].chunks_exact_mut(q_dim) {
                kernels::rmsnorm_in_place(row, w, c.rms_eps);
            }
        }
        project(
            self.isa,
            &s.att_out[..n * q_dim],
            n,
            [(&layer.wo, &mut s.proj[..n * dim])],
            &mut s.project,
        );
        residual_add(
            &mut s.x[..n * dim],
            &mut s.proj[..n * dim],
            dim,
            &layer.attn_post_norm,
            c.rms_eps,
        );
    }

    /// The feed-forward block on the normed input `s.xb`, leaving its output in `s.proj`.
    fn feed_forward(&self, s: &mut Session, layer: &Layer<'_>, n: usize) {
        let c = &self.config;
        let (dim, ff) = (c.dim, c.ffn_dim);
        match &layer.gate_up {
            GateUp::Separate { gate, up } => project(
                self.isa,
                &s.xb[..n * dim],
                n,
                [(gate, &mut s.gate[..n * ff]), (up, &mut s.up[..n * ff])],
                &mut s.project,
            ),
            GateUp::Fused(w) => {
                project(
                    self.isa,
                    &s.xb[..n * dim],
                    n,
                    [(w, &mut s.gate_up[..n * 2 * ff])],
                    &mut s.project,
                );
                for (t, row) in s.gate_up[..n * 2 * ff].chunks_exact(2 * ff).enumerate() {
                    s.gate[t * ff..(t + 1) * ff].copy_from_slice(&row[..ff]);
                    s.up[t * ff..(t + 1) * ff].copy_from_slice(&row[ff..]);
                }
            }
        }
        let gates = s.gate[..n * ff].chunks_exact_mut(ff);
        let ups = s.up[..n * ff].chunks_exact(ff);
        for (gate, up) in gates.zip(ups) {
            match c.ffn_act {
                FfnAct::SwiGlu => float_ops::swiglu_row(self.isa, gate, up),
                FfnAct::ReluSqr => gate.iter_mut().zip(up).for_each(|(g, &u)| {
                    let r = g.max(0.0);
                    *g = r * r * u;
                }),
                FfnAct::GeluTanh => gate
                    .iter_mut()
                    .zip(up)
                    .for_each(|(g, &u)| *g = kernels::gelu_tanh(*g) * u),
            }
        }
        if let Some(w) = &layer.ffn_sub_norm {
            for row in s.gate[..n * ff].chunks_exact_mut(ff) {
                kernels::rmsnorm_in_place(row, w, c.rms_eps);
            }
        }
        project(
            self.isa,
            &s.gate[..n * ff],
            n,
            [(&layer.w_down, &mut s.proj[..n * dim])],
            &mut s.project,
        );
    }

    /// The embedding row of `token`, decoded to f32 (`ggml_get_rows`), times the
    /// family's embedding scale.
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
        })?;
        if let Some(scale) = self.config.embed_scale {
            out.iter_mut().for_each(|v| *v *= scale);
        }
        Ok(())
    }

    /// llama.cpp's non-flash attention for the query tokens of `steps`, each over its
    /// lane's cached positions up to its own (and, with a sliding `window`, not more
    /// than `window - 1` behind it): `KQ = K(f16) · Q(f16)`, scaled, softmax, then
    /// `V(f16) · softmax(f16)`, each dot product in `ggml_vec_dot_f16`'s lanes and order
    /// and the softmax with ggml's vector `exp` (`float_ops`). Token × head pairs in
    /// parallel; query head `h` reads KV head `h / (n_head / n_head_kv)`.
    fn attention(
        &self,
        q: &[f32],
        cache: LayerCache<'_>,
        steps: &[Step],
        window: Option<usize>,
        out: &mut [f32],
    ) {
        let c = &self.config;
        let (hd, kv_dim, n_head) = (c.head_dim, c.kv_dim(), c.n_head);
        let group = c.n_head / c.n_head_kv;
        let heads = q.len() / hd.max(1);
        let outs = team::Chunks::new(out);
        team::for_each(heads, &|i| {
            let (t, h) = (i / n_head, i % n_head);
            let (Some(step), Some(qh)) = (steps.get(t), q.get(i * hd..(i + 1) * hd)) else {
                return;
            };
            // SAFETY: task `i` alone writes head `i`'s output.
            let out = unsafe { outs.get(i * hd..(i + 1) * hd) };
            let pos = step.pos;
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let lane = step.lane * cache.lane_span..(step.lane + 1) * cache.lane_span;
            let kv = KvHead {
                keys: cache.keys.get(lane.clone()).unwrap_or(&[]),
                values: cache.values.get(lane).unwrap_or(&[]),
                stride: kv_dim,
                offset: (h / group) * hd,
                head_dim: hd,
                q_scale: c.q_scale,
                kq_scale: c.kq_scale,
            };
            // Each thread's scratch lives as long as the thread: nothing is
            // allocated per token.
            ATTENTION_SCRATCH.with_borrow_mut(|scratch| {
                scratch.reserve(hd, cache.lane_span / kv_dim.max(1));
                attention::attend(self.isa, &kv, qh, first, pos, scratch, out);
            });
        });
    }
}

thread_local! {
    static ATTENTION_SCRATCH: std::cell::RefCell<attention::Scratch> =
        std::cell::RefCell::new(attention::Scratch::default());
}

/// One layer's K and V cache: every lane's `lane_span` values, lane after lane.
#[derive(Clone, Copy)]
struct LayerCache<'a> {
    keys: &'a [f16],
    values: &'a [f16],
    lane_span: usize,
}

/// `x += proj` row by row, with `proj` first RMS-normed by `post_norm` when the family has
/// one (Gemma 3's post-attention and post-FFN norms).
fn residual_add(
    x: &mut [f32],
    proj: &mut [f32],
    dim: usize,
    post_norm: &Option<Vec<f32>>,
    eps: f32,
) {
    if let Some(w) = post_norm {
        for row in proj.chunks_exact_mut(dim) {
            kernels::rmsnorm_in_place(row, w, eps);
        }
    }
    for (x, &p) in x.iter_mut().zip(proj.iter()) {
        *x += p;
    }
}
