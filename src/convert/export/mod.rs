//! `gguf-gate export`: a Hugging Face checkpoint (config.json + safetensors, sharded or
//! not, + tokenizer.json) becomes a clean GGUF — F16 (or BF16/F32) matrices, every norm
//! and 1-D tensor F32, nothing quantized — with llama.cpp's metadata keys and types, the
//! tokenizer embedded as `tokenizer.ggml.*`, a `.fingerprint` and a `.meta.json`
//! provenance record beside it. Tensors stream one block of rows at a time from the
//! memory-mapped shards into an atomic temporary file; `--strict` gates that file before
//! it is renamed into place. The same inputs always give the same bytes.
//!
//! The pieces: `config` (config.json -> hyper-parameters and metadata), `names` (the
//! tensor name map), `safetensors` (reading the checkpoint, BitNet unpacking), `pickle`
//! (PyTorch `.bin` files, read without executing them), `convert` (one tensor's rows ->
//! GGUF bytes). docs/export.md is the user's guide.

mod config;
mod convert;
mod error;
mod names;
mod pickle;
mod safetensors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ::safetensors::Dtype;
use serde_json::{json, Value as Json};

use crate::atomic::Overwrite;
use crate::convert::{file_label, write_gguf, Gate, OutputError, Outputs, Written};
use crate::fingerprint::{fingerprint_file, Fingerprint};
use crate::gguf::{Array, GgmlType, GgufWriter, TensorSpec, Value};
use crate::progress::{Progress, Quiet};
use crate::tokenizer::{gguf_metadata_from_sentencepiece, gguf_metadata_from_tokenizer_files};

pub use self::safetensors::ternary_row;
pub use config::{Family, ModelConfig, ScaleMode, BITNET_ARCH};
pub use convert::permuted_source_row;
pub use error::ExportError;
pub use names::{map_name, Mapped, Role};

use self::safetensors::{Checkpoint, FloatType};
use convert::{Decode, Job};

/// The converter's name in `.meta.json`.
pub const CONVERTER: &str = "gguf-gate export";
/// tokenizer.json files larger than this are refused.
pub const MAX_TOKENIZER_BYTES: u64 = 256 << 20;
/// tokenizer_config.json and chat_template.jinja larger than this are refused.
pub const MAX_TOKENIZER_CONFIG_BYTES: u64 = 16 << 20;
/// `--name` longer than this is refused (it becomes a file name).
pub const MAX_NAME_BYTES: usize = 200;

/// The element type of the exported matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    F16,
    BF16,
    F32,
}

impl OutType {
    pub fn ggml(self) -> GgmlType {
        match self {
            OutType::F16 => GgmlType::F16,
            OutType::BF16 => GgmlType::Bf16,
            OutType::F32 => GgmlType::F32,
        }
    }

    /// The file-name suffix and `--outtype` spelling.
    pub fn name(self) -> &'static str {
        match self {
            OutType::F16 => "f16",
            OutType::BF16 => "bf16",
            OutType::F32 => "f32",
        }
    }

    /// `general.file_type` (llama.cpp's `LLAMA_FTYPE_ALL_F32` 0, `MOSTLY_F16` 1, `MOSTLY_BF16` 32).
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::BF16 => 32,
        }
    }
}

/// What to export and how. `F` is what the gate reports when it refuses a file.
pub struct ExportOptions<'a, F> {
    /// The checkpoint directory (config.json, model.safetensors or an index + shards).
    pub dir: &'a Path,
    /// tokenizer.json; default: the one in `dir`.
    pub tokenizer: Option<&'a Path>,
    /// Where the outputs go (created if missing).
    pub out_dir: &'a Path,
    pub outtype: OutType,
    /// The output base name; default: `dir`'s name.
    pub name: Option<&'a str>,
    /// Replace existing outputs.
    pub force: bool,
    /// Run on the finished file before it is renamed into place (`--strict`).
    pub gate: Option<Gate<'a, F>>,
    /// Skip checkpoint tensors with no GGUF name instead of failing.
    pub allow_unmapped: bool,
    /// Where the write's progress goes.
    pub progress: &'a dyn Progress,
}

/// The files an export wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    pub outputs: Outputs,
    pub fingerprint: Fingerprint,
    pub tensors: usize,
    pub bytes: u64,
    /// Checkpoint tensors not written, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// How an export that ran to the end finished.
#[derive(Clone, Debug)]
pub enum Outcome<F> {
    Written(Exported),
    /// The gate refused the file for these findings; nothing was written.
    Refused(Vec<F>),
}

/// One GGUF tensor and where its values come from.
struct Planned {
    gguf: String,
    hf: String,
    source: Source,
    rows: usize,
    cols: usize,
    permute: Option<usize>,
    /// Gemma's norms: transformers stores `w - 1`, llama.cpp wants `w`.
    plus_one: bool,
    ty: GgmlType,
    /// ggml order.
    dims: Vec<u64>,
}

/// Where a GGUF tensor's values come from.
enum Source {
    /// Checkpoint entry `entry`, decoded as `decode`.
    Checkpoint { entry: usize, decode: Decode },
    /// Computed from config.json (Llama 3's `rope_freqs.weight`), F32.
    Computed(Vec<f32>),
}

/// Every GGUF tensor, in file order, and what was left out.
struct Plan {
    tensors: Vec<Planned>,
    skipped: Vec<(String, String)>,
}

/// A small input file read whole: its path and bytes (hashed for `.meta.json`).
type InputFile = (PathBuf, Vec<u8>);

/// The tokenizer's GGUF keys and the files besides tokenizer.json they came from.
struct TokenizerMeta {
    keys: Vec<(String, Value)>,
    read: Vec<InputFile>,
}

/// Read a whole file of at most `limit` bytes.
pub(crate) fn read_bounded(
    path: &Path,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>, ExportError> {
    crate::input::read_bounded(path, limit, what).map_err(ExportError::from)
}

fn read_json(path: &Path, limit: u64, what: &'static str) -> Result<(Vec<u8>, Json), ExportError> {
    let bytes = read_bounded(path, limit, what)?;
    let json = serde_json::from_slice(&bytes).map_err(|e| ExportError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok((bytes, json))
}

/// The expected Hugging Face shape of a GGUF tensor (by its name after `blk.N.`) and
/// the config fields it comes from.
fn expected_shape(cfg: &ModelConfig, suffix: &str) -> (Vec<u64>, &'static str) {
    let (h, f, v, q, kv, d) = (
        u64::from(cfg.hidden),
        u64::from(cfg.ffn),
        u64::from(cfg.vocab),
        cfg.q_rows(),
        cfg.kv_rows(),
        u64::from(cfg.head_dim),
    );
    match suffix {
        "token_embd.weight" | "output.weight" => (vec![v, h], "vocab_size x hidden_size"),
        "attn_q.weight" => (vec![q, h], "num_attention_heads*head_dim x hidden_size"),
        "attn_k.weight" | "attn_v.weight" => {
            (vec![kv, h], "num_key_value_heads*head_dim x hidden_size")
        }
        "attn_qkv.weight" => (
            vec![q + 2 * kv, h],
            "(num_attention_heads + 2*num_key_value_heads)*head_dim x hidden_size",
        ),
        "attn_q.bias" => (vec![q], "num_attention_heads*head_dim"),
        "attn_k.bias" | "attn_v.bias" => (vec![kv], "num_key_value_heads*head_dim"),
        "attn_q_norm.weight" | "attn_k_norm.weight" => (vec![d], "head_dim"),
        "attn_output.weight" => (vec![h, q], "hidden_size x num_attention_heads*head_dim"),
        "ffn_up.weight" if cfg.family == Family::Phi3 => (
            vec![2 * f, h],
            "2*intermediate_size (gate, then up) x hidden_size",
        ),
        "ffn_gate.weight" | "ffn_up.weight" => (vec![f, h], "intermediate_size x hidden_size"),
        "ffn_down.weight" => (vec![h, f], "hidden_size x intermediate_size"),
        "attn_sub_norm.weight" => (vec![q], "num_attention_heads*head_dim"),
        "ffn_sub_norm.weight" => (vec![f], "intermediate_size"),
        _ => (vec![h], "hidden_size"),
    }
}

fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

/// Decide, for every tensor the GGUF needs, where it comes from and how it converts.
fn plan(
    cfg: &ModelConfig,
    ckpt: &Checkpoint,
    outtype: OutType,
    allow_unmapped: bool,
) -> Result<Plan, ExportError> {
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut unmapped: Vec<String> = Vec::new();
    let mut scales: HashMap<String, usize> = HashMap::new();
    for (i, e) in ckpt.entries.iter().enumerate() {
        match map_name(cfg.family, cfg.layers, &e.name) {
            Mapped::Tensor { .. } => {}
            Mapped::Scale { weight } => {
                scales.insert(weight, i);
            }
            Mapped::Ignored => skipped.push((e.name.clone(), "recomputed by the loader".into())),
            Mapped::Unmapped => unmapped.push(e.name.clone()),
        }
    }
    if !unmapped.is_empty() {
        if !allow_unmapped {
            return Err(ExportError::Unmapped { tensors: unmapped });
        }
        skipped.extend(
            unmapped
                .into_iter()
                .map(|n| (n, "no GGUF name (--allow-unmapped)".to_string())),
        );
    }

    // Every tensor the GGUF needs, in file order: (checkpoint name, GGUF name, role).
    let mut wanted: Vec<(String, String, Role)> = vec![(
        "model.embed_tokens.weight".into(),
        "token_embd.weight".into(),
        Role::Embedding,
    )];
    let layer = names::layer_entries(cfg.family);
    // Every layer needs its tensors in the checkpoint: a layer count above the number of
    // tensors cannot be satisfied, and must not make us build billions of names.
    if cfg.layers as usize > ckpt.entries.len() {
        return Err(ExportError::ConfigInvalid {
            path: cfg.path.clone(),
            field: "num_hidden_layers".into(),
            expected: format!(
                "at most the {} tensors in the checkpoint",
                ckpt.entries.len()
            ),
            found: cfg.layers.to_string(),
        });
    }
    for l in 0..cfg.layers {
        for (hf, gguf, role) in &layer {
            wanted.push((
                format!("model.layers.{l}.{hf}"),
                format!("blk.{l}.{gguf}"),
                *role,
            ));
        }
    }
    wanted.push((
        "model.norm.weight".into(),
        "output_norm.weight".into(),
        Role::Norm,
    ));
    match ckpt.get("lm_head.weight") {
        Some(_) if cfg.tie_embeddings => skipped.push((
            "lm_head.weight".into(),
            "tie_word_embeddings is true: llama.cpp uses token_embd".into(),
        )),
        Some(head) => {
            let same = ckpt.get("model.embed_tokens.weight").is_some_and(|e| {
                e.dtype == head.dtype && e.shape == head.shape && ckpt.data(e) == ckpt.data(head)
            });
            if same {
                skipped.push((
                    "lm_head.weight".into(),
                    "identical to model.embed_tokens.weight (tied)".into(),
                ));
            } else {
                wanted.push((
                    "lm_head.weight".into(),
                    "output.weight".into(),
                    Role::Output,
                ));
            }
        }
        None if cfg.tie_embeddings => {}
        None => {
            return Err(ExportError::MissingTensor {
                tensor: "lm_head.weight".into(),
                gguf: "output.weight (tie_word_embeddings is false)".into(),
            })
        }
    }

    let mut tensors = Vec::with_capacity(wanted.len());
    for (hf, gguf, role) in wanted {
        let idx = ckpt
            .index_of(&hf)
            .ok_or_else(|| ExportError::MissingTensor {
                tensor: hf.clone(),
                gguf: gguf.clone(),
            })?;
        let e = &ckpt.entries[idx];
        let suffix = gguf.split_once("blk.").map_or(gguf.as_str(), |(_, rest)| {
            rest.split_once('.').map_or(rest, |(_, s)| s)
        });
        let (expected, why) = expected_shape(cfg, suffix);
        let scale = scales.get(&hf).and_then(|&i| ckpt.entries.get(i));
        let projection = matches!(role, Role::Query | Role::Key | Role::Projection);
        let (decode, shape, why) = if let Some(ft) = FloatType::of(e.dtype) {
            if let Some(s) = scale {
                return Err(ExportError::Bitnet {
                    tensor: s.name.clone(),
                    problem: format!(
                        "a weight_scale for {hf:?}, which is stored as {} rather than packed U8; only packed ternary weights are scaled",
                        dtype_name(e.dtype)
                    ),
                });
            }
            (Decode::Float(ft), e.shape.clone(), why.to_string())
        } else if e.dtype == Dtype::U8 && cfg.family == Family::Bitnet && projection {
            let s = scale.ok_or_else(|| ExportError::Bitnet {
                tensor: hf.clone(),
                problem: format!(
                    "a packed ternary (U8) weight needs {}, which the checkpoint lacks",
                    hf.replace(".weight", ".weight_scale")
                ),
            })?;
            let unit = scale_unit(ckpt, s, cfg.scale_mode)?;
            let mut shape = e.shape.clone();
            if let Some(first) = shape.first_mut() {
                *first = first
                    .checked_mul(4)
                    .ok_or_else(|| ExportError::ShapeMismatch {
                        tensor: hf.clone(),
                        expected: expected.clone(),
                        found: e.shape.clone(),
                        why: why.to_string(),
                    })?;
            }
            (
                Decode::Ternary { unit },
                shape,
                format!("{why}; packed U8 stores the first dimension / 4"),
            )
        } else {
            return Err(ExportError::UnsupportedDtype {
                path: ckpt.path_of(e).to_path_buf(),
                tensor: hf.clone(),
                dtype: dtype_name(e.dtype),
                expected: if cfg.family == Family::Bitnet && projection {
                    "F32, F16, BF16, or U8 (packed ternary, with a weight_scale)"
                } else {
                    "F32, F16 or BF16"
                },
            });
        };
        if shape != expected {
            return Err(ExportError::ShapeMismatch {
                tensor: hf,
                expected,
                found: shape,
                why,
            });
        }
        let to_usize = |x: u64| usize::try_from(x).unwrap_or(usize::MAX);
        let (rows, cols) = match shape.as_slice() {
            [n] => (1, to_usize(*n)),
            [r, c] => (to_usize(*r), to_usize(*c)),
            _ => (1, 1),
        };
        let permute = match (cfg.family, role) {
            (Family::Llama, Role::Query) => Some(cfg.heads as usize),
            (Family::Llama, Role::Key) => Some(cfg.kv_heads as usize),
            _ => None,
        };
        let ty = if role == Role::Norm || shape.len() == 1 {
            GgmlType::F32
        } else {
            outtype.ggml()
        };
        tensors.push(Planned {
            gguf,
            hf,
            source: Source::Checkpoint { entry: idx, decode },
            rows,
            cols,
            permute,
            plus_one: cfg.family == Family::Gemma3 && role == Role::Norm,
            ty,
            dims: shape.iter().rev().copied().collect(),
        });
    }
    // Llama 3 scaling: the per-pair factors convert_hf_to_gguf.py computes, first in
    // the file as it writes them.
    if let Some(freqs) = cfg.rope_freqs() {
        let n = freqs.len();
        tensors.insert(
            0,
            Planned {
                gguf: "rope_freqs.weight".into(),
                hf: "config.json rope_scaling (llama3)".into(),
                source: Source::Computed(freqs),
                rows: 1,
                cols: n,
                permute: None,
                plus_one: false,
                ty: GgmlType::F32,
                dims: vec![n as u64],
            },
        );
    }
    Ok(Plan { tensors, skipped })
}

/// The value a ternary ±1 becomes: `1 / weight_scale` (BitLinear) or `weight_scale`
/// (AutoBitLinear).
fn scale_unit(
    ckpt: &Checkpoint,
    s: &self::safetensors::Entry,
    mode: ScaleMode,
) -> Result<f32, ExportError> {
    let bad = |problem: String| ExportError::Bitnet {
        tensor: s.name.clone(),
        problem,
    };
    let ft = FloatType::of(s.dtype).ok_or_else(|| {
        bad(format!(
            "weight_scale has dtype {}; expected F32, F16 or BF16",
            dtype_name(s.dtype)
        ))
    })?;
    if s.elements() != 1 {
        return Err(bad(format!(
            "weight_scale has shape {:?}; expected a single value",
            s.shape
        )));
    }
    let mut v = [0f32];
    ft.decode(ckpt.data(s), &mut v);
    let unit = match mode {
        ScaleMode::Divide => 1.0 / v[0],
        ScaleMode::Multiply => v[0],
    };
    if !v[0].is_finite() || v[0] == 0.0 || !unit.is_finite() || unit == 0.0 {
        return Err(bad(format!(
            "weight_scale is {}; expected a finite non-zero number",
            v[0]
        )));
    }
    Ok(unit)
}

/// The tokenizer keys, padded to `vocab` tokens as convert_hf_to_gguf.py pads them, plus
/// the chat template. `path` is tokenizer.json, or a SentencePiece tokenizer.model
/// (`bytes` holds it). Returns the keys and the files read besides `path`
/// (tokenizer_config.json, added_tokens.json, chat_template.jinja when present).
fn tokenizer_metadata(
    path: &Path,
    bytes: &[u8],
    cfg: &ModelConfig,
) -> Result<TokenizerMeta, ExportError> {
    let vocab = cfg.vocab;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut read = Vec::new();
    let config_path = dir.join("tokenizer_config.json");
    let config = if config_path.is_file() {
        let (bytes, j) = read_json(
            &config_path,
            MAX_TOKENIZER_CONFIG_BYTES,
            "tokenizer_config.json",
        )?;
        read.push((config_path.clone(), bytes));
        Some(j)
    } else {
        None
    };
    let tokenizer_err = |source| ExportError::Tokenizer {
        path: path.to_path_buf(),
        source,
    };
    let mut keys = if is_sentencepiece(path) {
        let added_path = dir.join("added_tokens.json");
        let added = if added_path.is_file() {
            let (bytes, j) =
                read_json(&added_path, MAX_TOKENIZER_CONFIG_BYTES, "added_tokens.json")?;
            read.push((added_path, bytes));
            Some(j)
        } else {
            None
        };
        let mut keys = gguf_metadata_from_sentencepiece(
            bytes,
            config.as_ref(),
            added.as_ref(),
            vocab as usize,
        )
        .map_err(tokenizer_err)?;
        // The converter's per-family space-prefix flag: Gemma 3 never adds one; llama
        // follows tokenizer_config.json's add_prefix_space when it says.
        let prefix = match cfg.family {
            Family::Gemma3 => Some(false),
            Family::Llama => config
                .as_ref()
                .and_then(|c| c.get("add_prefix_space"))
                .and_then(Json::as_bool),
            _ => None,
        };
        if let Some(p) = prefix {
            keys.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(p)));
        }
        keys
    } else {
        let json: Json = serde_json::from_slice(bytes).map_err(|e| ExportError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        gguf_metadata_from_tokenizer_files(&json, config.as_ref()).map_err(tokenizer_err)?
    };
    let count = keys
        .iter()
        .find(|(k, _)| k == "tokenizer.ggml.tokens")
        .and_then(|(_, v)| v.as_array())
        .map_or(0, |a| a.len());
    let vocab_n = vocab as usize;
    if count > vocab_n {
        return Err(ExportError::VocabMismatch {
            path: path.to_path_buf(),
            tokens: count,
            vocab,
        });
    }
    // Fewer tokens than embedding rows: the rest are unused padding, as llama.cpp's
    // converter writes them (`[PADi]`, type UNUSED, score -1000).
    for (key, value) in keys.iter_mut() {
        match (key.as_str(), value) {
            ("tokenizer.ggml.tokens", Value::Array(Array::String(t))) => {
                t.extend((count..vocab_n).map(|i| format!("[PAD{i}]")));
            }
            ("tokenizer.ggml.token_type", Value::Array(Array::I32(t))) => {
                t.resize(vocab_n, 5);
            }
            ("tokenizer.ggml.scores", Value::Array(Array::F32(t))) => {
                t.resize(vocab_n, -1000.0);
            }
            _ => {}
        }
    }
    // The chat template: chat_template.jinja wins over tokenizer_config.json's, as in
    // gguf-py's SpecialVocab.
    let jinja = dir.join("chat_template.jinja");
    let template = if jinja.is_file() {
        let bytes = read_bounded(&jinja, MAX_TOKENIZER_CONFIG_BYTES, "chat template")?;
        let text = String::from_utf8(bytes.clone()).map_err(|e| ExportError::Json {
            path: jinja.clone(),
            message: format!("not UTF-8: {e}"),
        })?;
        read.push((jinja, bytes));
        Some(text)
    } else {
        config
            .as_ref()
            .and_then(|c| c.get("chat_template"))
            .and_then(Json::as_str)
            .map(str::to_string)
    };
    if let Some(t) = template {
        keys.push(("tokenizer.chat_template".into(), Value::String(t)));
    }
    Ok(TokenizerMeta { keys, read })
}

/// A SentencePiece model (`*.model`) rather than a tokenizer.json.
fn is_sentencepiece(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "model")
}

/// The tokenizer convert_hf_to_gguf.py would read: `tokenizer.model` when the
/// checkpoint has one (every family tries SentencePiece first), else tokenizer.json.
fn default_tokenizer(dir: &Path) -> PathBuf {
    let spm = dir.join("tokenizer.model");
    if spm.is_file() {
        spm
    } else {
        dir.join("tokenizer.json")
    }
}

fn check_name(name: &str) -> Result<(), ExportError> {
    let bad = |problem| ExportError::BadName {
        name: name.chars().take(100).collect(),
        problem,
    };
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(bad("is longer than 200 bytes"));
    }
    if name.starts_with('.')
        || name.contains(['/', '\\', '\0'])
        || name.chars().any(char::is_control)
    {
        return Err(bad(
            "must be a plain file name: no path separators, control characters or leading dot",
        ));
    }
    Ok(())
}

/// Everything read from the checkpoint directory before anything is written.
struct Inputs {
    config_path: PathBuf,
    config_bytes: Vec<u8>,
    cfg: ModelConfig,
    tok_path: PathBuf,
    tok_bytes: Vec<u8>,
    ckpt: Checkpoint,
    plan: Plan,
    tokenizer: TokenizerMeta,
}

impl Inputs {
    fn read(opts: &ExportOptions<'_, impl Sized>) -> Result<Inputs, ExportError> {
        let dir = opts.dir;
        let config_path = dir.join("config.json");
        let config_bytes = read_bounded(&config_path, config::MAX_CONFIG_BYTES, "config.json")?;
        let cfg = config::parse(&config_path, &config_bytes)?;
        let tok_path = opts
            .tokenizer
            .map_or_else(|| default_tokenizer(dir), Path::to_path_buf);
        let what = if is_sentencepiece(&tok_path) {
            "tokenizer.model"
        } else {
            "tokenizer.json"
        };
        let tok_bytes = read_bounded(&tok_path, MAX_TOKENIZER_BYTES, what)?;
        // The checkpoint first: `plan` proves token_embd has `vocab_size` real rows, which
        // bounds the padding `tokenizer_metadata` may add to the vocabulary.
        let ckpt = Checkpoint::open(dir)?;
        let plan = plan(&cfg, &ckpt, opts.outtype, opts.allow_unmapped)?;
        let tokenizer = tokenizer_metadata(&tok_path, &tok_bytes, &cfg)?;
        Ok(Inputs {
            config_path,
            config_bytes,
            cfg,
            tok_path,
            tok_bytes,
            ckpt,
            plan,
            tokenizer,
        })
    }

    /// Every file read, so that no output replaces one.
    fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config_path.clone()];
        files.extend(self.ckpt.files());
        files.push(self.tok_path.clone());
        files.extend(self.tokenizer.read.iter().map(|(p, _)| p.clone()));
        files
    }

    /// The GGUF header: llama.cpp's keys for the architecture, the tokenizer, the tensors.
    fn header(&self, name: &str, outtype: OutType, path: &Path) -> Result<GgufWriter, ExportError> {
        let write_err = |source| OutputError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut keys: Vec<(String, Value)> = vec![
            (
                "general.architecture".into(),
                Value::String(self.cfg.arch.into()),
            ),
            ("general.type".into(), Value::String("model".into())),
            ("general.name".into(), Value::String(name.to_string())),
        ];
        keys.extend(self.cfg.metadata());
        keys.push(("general.file_type".into(), Value::U32(outtype.file_type())));
        keys.extend(self.tokenizer.keys.iter().cloned());
        keys.push(("general.quantization_version".into(), Value::U32(2)));
        let mut w = GgufWriter::new();
        for (k, v) in keys {
            w.add(k, v).map_err(write_err)?;
        }
        for t in &self.plan.tensors {
            w.add_tensor(TensorSpec::new(t.gguf.clone(), t.ty, &t.dims))
                .map_err(write_err)?;
        }
        Ok(w)
    }

    /// Convert tensor `i` into `sink`.
    fn write_tensor(
        &self,
        i: usize,
        sink: &mut dyn std::io::Write,
        count: &dyn Fn(u64),
        output: &Path,
    ) -> Result<(), ExportError> {
        let Some(t) = self.plan.tensors.get(i) else {
            return Ok(());
        };
        let (entry, decode) = match &t.source {
            Source::Checkpoint { entry, decode } => (*entry, *decode),
            Source::Computed(values) => {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                sink.write_all(&bytes)
                    .map_err(|e| ExportError::io(output, e))?;
                count(bytes.len() as u64);
                return Ok(());
            }
        };
        let Some(e) = self.ckpt.entries.get(entry) else {
            return Ok(());
        };
        let job = Job {
            name: &t.hf,
            data: self.ckpt.data(e),
            decode,
            rows: t.rows,
            cols: t.cols,
            permute: t.permute,
            plus_one: t.plus_one,
            out: t.ty,
            output,
        };
        let r = convert::run(&job, sink, &mut |n| count(n));
        self.ckpt.release(e);
        r
    }

    /// The `.meta.json` provenance record.
    fn meta(
        &self,
        outputs: &Outputs,
        fingerprint: Fingerprint,
        bytes: u64,
        outtype: OutType,
    ) -> Result<Json, ExportError> {
        let mut sources = vec![json!({
            "file": file_label(&self.config_path),
            "sha256": Fingerprint::of_bytes(&self.config_bytes).to_string(),
        })];
        for f in self.ckpt.files() {
            let fp = fingerprint_file(&f, &Quiet).map_err(|e| ExportError::io(&f, e))?;
            sources.push(json!({"file": file_label(&f), "sha256": fp.to_string()}));
        }
        let mut tokenizer = json!({
            "file": file_label(&self.tok_path),
            "sha256": Fingerprint::of_bytes(&self.tok_bytes).to_string(),
        });
        for (p, bytes) in &self.tokenizer.read {
            let key = match file_label(p).as_str() {
                "chat_template.jinja" => "chat_template",
                "added_tokens.json" => "added_tokens",
                _ => "config",
            };
            tokenizer[key] =
                json!({"file": file_label(p), "sha256": Fingerprint::of_bytes(bytes).to_string()});
        }
        let norms: Vec<&str> = self
            .plan
            .tensors
            .iter()
            .filter(|t| t.ty == GgmlType::F32 && t.dims.len() == 1)
            .map(|t| t.gguf.as_str())
            .collect();
        Ok(json!({
            "converter": {"name": CONVERTER, "version": env!("CARGO_PKG_VERSION")},
            "output": {
                "file": file_label(&outputs.gguf),
                "fingerprint": fingerprint.to_string(),
                "bytes": bytes,
                "outtype": outtype.name(),
                "general.file_type": outtype.file_type(),
                "architecture": self.cfg.arch,
                "tensors": self.plan.tensors.len(),
            },
            "source": {
                "model_type": self.cfg.model_type,
                "files": sources,
            },
            "tokenizer": tokenizer,
            "norms_kept_f32": norms,
            "skipped": self.plan.skipped.iter().map(|(t, why)| json!({"tensor": t, "reason": why})).collect::<Vec<_>>(),
        }))
    }
}

/// The outputs' base name: `--name`, else the checkpoint directory's name.
fn output_name(opts: &ExportOptions<'_, impl Sized>) -> Result<String, ExportError> {
    let name = match opts.name {
        Some(n) => n.to_string(),
        None => opts
            .dir
            .canonicalize()
            .map_err(|e| ExportError::io(opts.dir, e))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    check_name(&name)?;
    Ok(name)
}

/// Run the export. `F` is what the caller's gate reports when it refuses the file.
pub fn export<F>(opts: &ExportOptions<'_, F>) -> Result<Outcome<F>, ExportError> {
    if !opts.dir.is_dir() {
        return Err(ExportError::io(opts.dir, "not a directory"));
    }
    let name = output_name(opts)?;
    let inputs = Inputs::read(opts)?;

    // Outputs: never an input, never an existing file without --force.
    std::fs::create_dir_all(opts.out_dir).map_err(|e| ExportError::io(opts.out_dir, e))?;
    let outputs = Outputs::beside(
        opts.out_dir
            .join(format!("{name}-{}.gguf", opts.outtype.name())),
    );
    outputs.claim(&inputs.files(), opts.force)?;
    let overwrite = if opts.force {
        Overwrite::Allow
    } else {
        Overwrite::Refuse
    };

    // The data, streamed into a temporary file; gated there when the caller asks.
    let w = inputs.header(&name, opts.outtype, &outputs.gguf)?;
    let written = write_gguf(
        &outputs.gguf,
        overwrite,
        &w,
        opts.gate,
        opts.progress,
        "export",
        |i, sink, count| inputs.write_tensor(i, sink, count, &outputs.gguf),
    )?;
    let fingerprint = match written {
        Written::Done { fingerprint } => fingerprint,
        Written::Refused(findings) => return Ok(Outcome::Refused(findings)),
    };
    let meta = inputs.meta(&outputs, fingerprint, w.file_size(), opts.outtype)?;
    outputs.write_sidecars(fingerprint, &meta, overwrite)?;

    Ok(Outcome::Written(Exported {
        outputs,
        fingerprint,
        tensors: inputs.plan.tensors.len(),
        bytes: w.file_size(),
        skipped: inputs.plan.skipped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outtypes() {
        assert_eq!(
            [OutType::F16, OutType::BF16, OutType::F32].map(OutType::file_type),
            [1, 32, 0]
        );
        assert_eq!(OutType::BF16.name(), "bf16");
        assert_eq!(OutType::F16.ggml(), GgmlType::F16);
    }

    #[test]
    fn names_must_be_plain() {
        for bad in ["", ".hidden", "a/b", "a\\b", "a\0b", "a\nb"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(201)).is_err());
        assert!(check_name("SmolLM2-135M").is_ok());
    }

    #[test]
    fn read_bounded_refuses_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.json");
        std::fs::write(&p, vec![b' '; 100]).unwrap();
        assert!(matches!(
            read_bounded(&p, 99, "test"),
            Err(ExportError::TooLarge { bytes: 100, .. })
        ));
        assert_eq!(read_bounded(&p, 100, "test").unwrap().len(), 100);
        assert!(matches!(
            read_bounded(&dir.path().join("missing"), 1, "test"),
            Err(ExportError::Io { .. })
        ));
    }
}
