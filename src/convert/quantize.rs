//! Quantizing a GGUF file (the core of `gguf-gate quantize`; the block algorithms are
//! `quant::quantize`): a GGUF in (any type `quant::dequantize` reads) becomes a Q8_0,
//! Q4_0, TQ1_0, TQ2_0 or I2_S GGUF out, **never quantizing a norm**: norms (the norm
//! patterns the caller passes, from the policy) and every tensor that is not a 2-D weight matrix are kept, and a
//! matrix whose row length is not a whole number of blocks is kept too and reported.
//! For the ternary targets `token_embd.weight` and `output.weight` become Q8_0 (as
//! llama.cpp and bitnet.cpp keep them at higher precision). Tensors stream one at a time
//! from the memory-mapped input (decode, quantize, write), so memory is about the largest
//! tensor; the file is written atomically beside a `.fingerprint` and a `.meta.json`, and
//! a gate the caller passes (`--strict`) runs before the rename — the same pieces
//! `export` uses (`convert::output`).
//! docs/quantize.md is the user's guide.

use std::path::{Path, PathBuf};

use serde_json::json;
use thiserror::Error;

use crate::atomic::Overwrite;
use crate::convert::{file_label, write_gguf, Gate, OutputError, Outputs, Written};
use crate::fingerprint::{fingerprint_file, Fingerprint};
use crate::gguf::{
    GgmlType, GgufFile, GgufWriter, Header, OpenError, TensorInfo, TensorSpec, Value,
};
use crate::glob::glob_match;
use crate::progress::{Progress, Quiet};
use crate::quant;

/// The converter's name in `.meta.json`.
pub const CONVERTER: &str = "gguf-gate quantize";

/// A target type of `quantize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantType {
    Q8_0,
    Q4_0,
    Tq1_0,
    Tq2_0,
    I2S,
}

impl QuantType {
    pub const ALL: [QuantType; 5] = [
        QuantType::Q8_0,
        QuantType::Q4_0,
        QuantType::Tq1_0,
        QuantType::Tq2_0,
        QuantType::I2S,
    ];

    pub fn ggml(self) -> GgmlType {
        match self {
            QuantType::Q8_0 => GgmlType::Q8_0,
            QuantType::Q4_0 => GgmlType::Q4_0,
            QuantType::Tq1_0 => GgmlType::Tq1_0,
            QuantType::Tq2_0 => GgmlType::Tq2_0,
            QuantType::I2S => GgmlType::I2S,
        }
    }

    /// The `--type` spelling and file-name suffix.
    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q8_0 => "q8_0",
            QuantType::Q4_0 => "q4_0",
            QuantType::Tq1_0 => "tq1_0",
            QuantType::Tq2_0 => "tq2_0",
            QuantType::I2S => "i2_s",
        }
    }

    pub fn from_name(name: &str) -> Option<QuantType> {
        QuantType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// `general.file_type` (`enum llama_ftype`): MOSTLY_Q8_0 7, MOSTLY_Q4_0 2,
    /// MOSTLY_TQ1_0 36, MOSTLY_TQ2_0 37; I2_S is bitnet.cpp's `LLAMA_FTYPE_MOSTLY_I2_S`
    /// 40 (its llama.cpp fork; upstream llama.cpp has no I2_S and uses 40 for Q1_0).
    pub fn file_type(self) -> u32 {
        match self {
            QuantType::Q8_0 => 7,
            QuantType::Q4_0 => 2,
            QuantType::Tq1_0 => 36,
            QuantType::Tq2_0 => 37,
            QuantType::I2S => 40,
        }
    }

    /// TQ1_0, TQ2_0 and I2_S: only for ternary (BitNet b1.58) weights.
    pub fn is_ternary(self) -> bool {
        matches!(self, QuantType::Tq1_0 | QuantType::Tq2_0 | QuantType::I2S)
    }
}

/// What to quantize and how. `F` is what the gate reports when it refuses a file.
pub struct QuantizeOptions<'a, F> {
    pub input: &'a Path,
    pub ty: QuantType,
    /// Default: `<input stem>-<type>.gguf` beside the input.
    pub out: Option<&'a Path>,
    /// Replace existing outputs.
    pub force: bool,
    /// Which tensors are norms (glob patterns): never quantized.
    pub norm_patterns: &'a [String],
    /// Run on the finished file before it is renamed into place (`--strict`).
    pub gate: Option<Gate<'a, F>>,
    /// Where the write's progress goes.
    pub progress: &'a dyn Progress,
}

/// What happens to one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Decoded and quantized to this type.
    Quantize(GgmlType),
    /// Copied byte for byte; the reason is reported.
    Keep(String),
    /// A norm or 1-D tensor stored quantized in the input: written as F32 (its decoded
    /// values), so the output never carries a quantized norm.
    ToF32(String),
}

/// One tensor of the output, in input order.
#[derive(Clone, Debug)]
pub struct Planned {
    pub name: String,
    pub from: GgmlType,
    pub dims: Vec<u64>,
    pub action: Action,
}

impl Planned {
    pub fn out_type(&self) -> GgmlType {
        match &self.action {
            Action::Quantize(t) => *t,
            Action::Keep(_) => self.from,
            Action::ToF32(_) => GgmlType::F32,
        }
    }
}

/// The files a quantization wrote.
#[derive(Clone, Debug)]
pub struct Quantized {
    pub outputs: Outputs,
    pub fingerprint: Fingerprint,
    pub bytes: u64,
    pub tensors: Vec<Planned>,
}

/// How a quantization that ran to the end finished.
#[derive(Clone, Debug)]
pub enum Outcome<F> {
    Written(Quantized),
    /// The gate refused the file for these findings; nothing was written.
    Refused(Vec<F>),
}

/// A quantization that could not be completed. No file is left under the output names.
#[derive(Debug, Error)]
pub enum QuantizeError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },

    #[error(transparent)]
    Open(#[from] OpenError),

    #[error("tensor {tensor}: cannot decode its {ty} data: {source}")]
    Decode {
        tensor: String,
        ty: GgmlType,
        source: quant::QuantError,
    },

    #[error("tensor {tensor}: cannot quantize to {ty}: {source}")]
    Quantize {
        tensor: String,
        ty: GgmlType,
        source: quant::QuantizeError,
    },

    #[error(transparent)]
    Output(#[from] OutputError),
}

impl QuantizeError {
    fn io(path: &Path, e: impl std::fmt::Display) -> QuantizeError {
        QuantizeError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// Decide what happens to one tensor (see the module docs and docs/quantize.md).
pub fn plan_tensor(t: &TensorInfo, ty: QuantType, norms: &[String]) -> Action {
    let is_norm = norms.iter().any(|p| glob_match(p, &t.name));
    let floatish = |why: String| {
        if t.ty.is_float() || !quant::is_supported(t.ty) {
            Action::Keep(why)
        } else {
            Action::ToF32(why)
        }
    };
    if is_norm {
        return floatish("a norm: never quantized".into());
    }
    if t.dims.len() != 2 {
        return floatish(format!(
            "{}-D: only 2-D matrices are quantized",
            t.dims.len()
        ));
    }
    if !t.name.ends_with(".weight") {
        return Action::Keep("not a weight matrix".into());
    }
    if !quant::is_supported(t.ty) {
        return Action::Keep(format!("gguf-gate cannot decode {}", t.ty));
    }
    let target =
        if ty.is_ternary() && matches!(t.name.as_str(), "token_embd.weight" | "output.weight") {
            GgmlType::Q8_0
        } else {
            ty.ggml()
        };
    let block = quant::quant_block(target).map_or(1, |(b, _)| b as u64);
    let row = t.dims.first().copied().unwrap_or(0);
    if row % block != 0 {
        return Action::Keep(format!(
            "row length {row} is not a multiple of {target}'s {block}-element block"
        ));
    }
    Action::Quantize(target)
}

/// The default output: `<stem>-<type>.gguf` beside the input.
pub fn default_output(input: &Path, ty: QuantType) -> PathBuf {
    let stem = input
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    input.with_file_name(format!("{stem}-{}.gguf", ty.name()))
}

/// Decode one tensor and produce its output bytes.
fn convert(file: &GgufFile, t: &TensorInfo, p: &Planned) -> Result<Vec<u8>, QuantizeError> {
    let data = file.tensor_data(t);
    let elements = usize::try_from(t.elements).unwrap_or(usize::MAX);
    let decode = || {
        quant::to_f32(t.ty, data, elements).map_err(|source| QuantizeError::Decode {
            tensor: t.name.clone(),
            ty: t.ty,
            source,
        })
    };
    match &p.action {
        Action::Keep(_) => Ok(data.to_vec()),
        Action::ToF32(_) => Ok(decode()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        Action::Quantize(ty) => {
            let values = decode()?;
            quant::quantize(*ty, &values).map_err(|source| QuantizeError::Quantize {
                tensor: t.name.clone(),
                ty: *ty,
                source,
            })
        }
    }
}

/// The output's header: the input's keys in order with `general.file_type` and
/// `general.quantization_version` set, and the planned tensors.
fn header_of_output(
    input: &Header,
    plan: &[Planned],
    ty: QuantType,
    path: &Path,
) -> Result<GgufWriter, QuantizeError> {
    let write_err = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut keys: Vec<(String, Value)> = input
        .metadata
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect();
    for (key, value) in [
        ("general.file_type", ty.file_type()),
        ("general.quantization_version", 2),
    ] {
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = Value::U32(value),
            None => keys.push((key.into(), Value::U32(value))),
        }
    }
    let mut w = GgufWriter::new();
    for (k, v) in keys {
        w.add(k, v).map_err(write_err)?;
    }
    for p in plan {
        w.add_tensor(TensorSpec::new(p.name.clone(), p.out_type(), &p.dims))
            .map_err(write_err)?;
    }
    Ok(w)
}

/// The `.meta.json` provenance record.
fn meta(
    input: &Path,
    header: &Header,
    plan: &[Planned],
    ty: QuantType,
    outputs: &Outputs,
    fingerprint: Fingerprint,
    bytes: u64,
) -> Result<serde_json::Value, QuantizeError> {
    let source_fp = fingerprint_file(input, &Quiet).map_err(|e| QuantizeError::io(input, e))?;
    let quantized: Vec<_> = plan
        .iter()
        .filter_map(|p| match &p.action {
            Action::Quantize(to) => {
                Some(json!({"tensor": p.name, "from": p.from.name(), "to": to.name()}))
            }
            _ => None,
        })
        .collect();
    let kept: Vec<_> = plan
        .iter()
        .filter_map(|p| match &p.action {
            Action::Keep(why) | Action::ToF32(why) => Some(json!({
                "tensor": p.name, "from": p.from.name(), "to": p.out_type().name(), "reason": why
            })),
            Action::Quantize(_) => None,
        })
        .collect();
    Ok(json!({
        "converter": {"name": CONVERTER, "version": env!("CARGO_PKG_VERSION")},
        "output": {
            "file": file_label(&outputs.gguf),
            "fingerprint": fingerprint.to_string(),
            "bytes": bytes,
            "type": ty.name(),
            "general.file_type": ty.file_type(),
            "architecture": header.architecture(),
            "tensors": plan.len(),
        },
        "source": {
            "file": file_label(input),
            "sha256": source_fp.to_string(),
            "general.file_type": header.get_u64("general.file_type"),
        },
        "quantized": quantized,
        "kept": kept,
    }))
}

/// Run the quantization. `F` is what the caller's gate reports when it refuses the file.
pub fn quantize<F>(opts: &QuantizeOptions<'_, F>) -> Result<Outcome<F>, QuantizeError> {
    let input = opts.input;
    let file = GgufFile::open(input)?;
    let header = &file.header;
    let plan: Vec<Planned> = header
        .tensors
        .iter()
        .map(|t| Planned {
            name: t.name.clone(),
            from: t.ty,
            dims: t.dims.clone(),
            action: plan_tensor(t, opts.ty, opts.norm_patterns),
        })
        .collect();

    // Outputs: never the input, never an existing file without --force.
    let outputs = Outputs::beside(
        opts.out
            .map_or_else(|| default_output(input, opts.ty), Path::to_path_buf),
    );
    outputs.claim(&[input.to_path_buf()], opts.force)?;
    let overwrite = if opts.force {
        Overwrite::Allow
    } else {
        Overwrite::Refuse
    };

    // The data, streamed into a temporary file; gated there when the caller asks.
    let w = header_of_output(header, &plan, opts.ty, &outputs.gguf)?;
    let written = write_gguf(
        &outputs.gguf,
        overwrite,
        &w,
        opts.gate,
        opts.progress,
        "quantize",
        |i, sink, count| {
            let (Some(t), Some(p)) = (header.tensors.get(i), plan.get(i)) else {
                return Ok(());
            };
            let bytes = convert(&file, t, p);
            file.release(header.data_range(t));
            let bytes = bytes?;
            count(bytes.len() as u64);
            sink.write_all(&bytes)
                .map_err(|e| QuantizeError::io(&outputs.gguf, e))
        },
    )?;
    let fingerprint = match written {
        Written::Done { fingerprint } => fingerprint,
        Written::Refused(findings) => return Ok(Outcome::Refused(findings)),
    };
    let meta = meta(
        input,
        header,
        &plan,
        opts.ty,
        &outputs,
        fingerprint,
        w.file_size(),
    )?;
    outputs.write_sidecars(fingerprint, &meta, overwrite)?;

    Ok(Outcome::Written(Quantized {
        outputs,
        fingerprint,
        bytes: w.file_size(),
        tensors: plan,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, ty: GgmlType, dims: &[u64]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            ty,
            dims: dims.to_vec(),
            offset: 0,
            size: 0,
            elements: dims.iter().product(),
            info_offset: 0,
        }
    }

    #[test]
    fn types_names_and_file_types() {
        for t in QuantType::ALL {
            assert_eq!(QuantType::from_name(t.name()), Some(t));
        }
        assert_eq!(QuantType::from_name("Q8_0"), Some(QuantType::Q8_0));
        assert_eq!(QuantType::from_name("q5_0"), None);
        assert_eq!(QuantType::ALL.map(QuantType::file_type), [7, 2, 36, 37, 40]);
        assert_eq!(
            QuantType::ALL.map(|t| crate::gguf::file_type_name(t.file_type().into())),
            [
                Some("MOSTLY_Q8_0"),
                Some("MOSTLY_Q4_0"),
                Some("MOSTLY_TQ1_0"),
                Some("MOSTLY_TQ2_0"),
                // Upstream's 40; bitnet.cpp's fork uses it for I2_S.
                Some("MOSTLY_Q1_0 or MOSTLY_I2_S (bitnet.cpp)"),
            ]
        );
    }

    #[test]
    fn plan_never_quantizes_norms_or_vectors() {
        // The default policy's norm patterns (src/policy/presets/generic.yaml).
        let norms: Vec<String> = [
            "*_norm.weight",
            "*.attn_sub_norm.weight",
            "output_norm.weight",
        ]
        .map(String::from)
        .to_vec();
        let q = |name: &str, ty, dims: &[u64], to| plan_tensor(&info(name, ty, dims), to, &norms);
        use GgmlType as G;
        use QuantType as Q;
        assert_eq!(
            q("blk.0.attn_q.weight", G::F16, &[256, 256], Q::Tq2_0),
            Action::Quantize(G::Tq2_0)
        );
        assert!(matches!(
            q("blk.0.attn_norm.weight", G::F32, &[256], Q::Q8_0),
            Action::Keep(_)
        ));
        // A 2-D tensor that matches a norm pattern is still a norm.
        assert!(matches!(
            q("blk.0.attn_norm.weight", G::F32, &[32, 2], Q::Q8_0),
            Action::Keep(_)
        ));
        assert!(matches!(
            q("blk.0.ffn_sub_norm.weight", G::Q8_0, &[256], Q::I2S),
            Action::ToF32(_)
        ));
        assert!(matches!(
            q("blk.0.attn_q.bias", G::F32, &[256], Q::Q8_0),
            Action::Keep(_)
        ));
        assert_eq!(
            q("token_embd.weight", G::F16, &[256, 32], Q::I2S),
            Action::Quantize(G::Q8_0)
        );
        assert_eq!(
            q("output.weight", G::F16, &[576, 32], Q::Tq1_0),
            Action::Quantize(G::Q8_0)
        );
        assert_eq!(
            q("token_embd.weight", G::F16, &[256, 32], Q::Q4_0),
            Action::Quantize(G::Q4_0)
        );
        let Action::Keep(why) = q("blk.0.ffn_down.weight", G::F16, &[576, 64], Q::Tq2_0) else {
            panic!("kept");
        };
        assert!(why.contains("576") && why.contains("256"), "{why}");
        assert!(matches!(
            q("blk.0.ffn_down.weight", G::Iq2Xxs, &[256, 64], Q::Tq2_0),
            Action::Keep(_)
        ));
    }

    #[test]
    fn output_names() {
        assert_eq!(
            default_output(Path::new("/m/SmolLM2.Q4_1.gguf"), QuantType::Q8_0),
            Path::new("/m/SmolLM2.Q4_1-q8_0.gguf")
        );
    }
}
