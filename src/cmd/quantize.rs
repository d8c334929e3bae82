//! `gguf-gate quantize`: a GGUF -> Q8_0/Q4_0/TQ1_0/TQ2_0/I2_S with its sidecars
//! (`convert::quantize`). Which tensors are norms (never quantized) comes from the
//! default policy for the model's architecture; `--strict` passes the gate to the writer.

use anyhow::{Context, Result};

use super::export::gate_failed;
use super::progress::Bars;
use super::{emit, strict, Outcome};
use crate::cli::{QuantTypeArg, QuantizeArgs};
use gguf_gate::convert::quantize::{self, Action, QuantType, QuantizeOptions};
use gguf_gate::gate::strict_gate;
use gguf_gate::gguf::GgufFile;
use gguf_gate::policy;

pub fn run(args: QuantizeArgs) -> Result<Outcome> {
    let arch = GgufFile::open(&args.input)?
        .header
        .architecture()
        .map(String::from);
    let norm_patterns = policy::load(None, arch.as_deref(), false)
        .context("the default policy's norm patterns")?
        .norms
        .patterns;
    let options = QuantizeOptions {
        input: &args.input,
        ty: match args.ty {
            QuantTypeArg::Q8_0 => QuantType::Q8_0,
            QuantTypeArg::Q4_0 => QuantType::Q4_0,
            QuantTypeArg::Tq1_0 => QuantType::Tq1_0,
            QuantTypeArg::Tq2_0 => QuantType::Tq2_0,
            QuantTypeArg::I2S => QuantType::I2S,
        },
        out: args.out.as_deref(),
        force: args.force,
        norm_patterns: &norm_patterns,
        gate: strict(args.strict).then_some(&strict_gate as _),
        progress: &Bars,
    };
    let done = match quantize::quantize(&options)? {
        quantize::Outcome::Written(done) => done,
        quantize::Outcome::Refused(findings) => return gate_failed("quantize", &findings),
    };
    let quantized = done
        .tensors
        .iter()
        .filter(|t| matches!(t.action, Action::Quantize(_)))
        .count();
    let mut text = format!(
        "wrote {} ({} tensors, {quantized} quantized, {} bytes)\nwrote {}\nwrote {}\n{}\n",
        done.outputs.gguf.display(),
        done.tensors.len(),
        done.bytes,
        done.outputs.fingerprint.display(),
        done.outputs.meta.display(),
        done.fingerprint
    );
    // Norms and vectors are listed in .meta.json; other kept tensors here.
    let vectors = done.tensors.iter().filter(|t| t.dims.len() == 1).count();
    text.push_str(&format!(
        "kept {vectors} norm and 1-D tensor(s) unquantized (listed in the .meta.json)\n"
    ));
    for t in done.tensors.iter().filter(|t| t.dims.len() != 1) {
        if let Action::Keep(why) | Action::ToF32(why) = &t.action {
            text.push_str(&format!("kept {} as {}: {why}\n", t.name, t.out_type()));
        }
    }
    emit(None, &text)?;
    Ok(Outcome::Pass)
}
