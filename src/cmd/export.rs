//! `gguf-gate export`: a Hugging Face checkpoint -> a clean GGUF with its sidecars
//! (`convert::export`); `--strict` passes the gate (`gate::strict_gate`) to the writer.

use anyhow::Result;

use super::progress::Bars;
use super::{emit, strict, Outcome};
use crate::cli::{ExportArgs, OutType};
use gguf_gate::convert::export::{self, ExportOptions};
use gguf_gate::gate::strict_gate;
use gguf_gate::rules::Finding;

pub fn run(args: ExportArgs) -> Result<Outcome> {
    let options = ExportOptions {
        dir: &args.dir,
        tokenizer: args.tokenizer.as_deref(),
        out_dir: &args.out,
        outtype: match args.outtype {
            OutType::F16 => export::OutType::F16,
            OutType::Bf16 => export::OutType::BF16,
            OutType::F32 => export::OutType::F32,
        },
        name: args.name.as_deref(),
        force: args.force,
        gate: strict(args.strict).then_some(&strict_gate as _),
        allow_unmapped: args.allow_unmapped,
        progress: &Bars,
    };
    match export::export(&options)? {
        export::Outcome::Written(done) => {
            let mut text = format!(
                "wrote {} ({} tensors, {} bytes)\nwrote {}\nwrote {}\n{}\n",
                done.outputs.gguf.display(),
                done.tensors,
                done.bytes,
                done.outputs.fingerprint.display(),
                done.outputs.meta.display(),
                done.fingerprint
            );
            for (tensor, why) in &done.skipped {
                text.push_str(&format!("skipped {tensor}: {why}\n"));
            }
            emit(None, &text)?;
            Ok(Outcome::Pass)
        }
        export::Outcome::Refused(findings) => gate_failed("export", &findings),
    }
}

/// `export --strict` / `quantize --strict` refused the file: print each failure with its fix.
pub(super) fn gate_failed(command: &str, findings: &[Finding]) -> Result<Outcome> {
    let mut text = format!("{command} --strict: the gate failed; no file was written\n");
    for f in findings {
        text.push_str(&format!("  {} {}: {}", f.rule, f.subject, f.message));
        if let (Some(v), Some(b)) = (&f.value, &f.bound) {
            text.push_str(&format!(" (value {v}, bound {b})"));
        }
        text.push_str(&format!("\n    fix: {}\n", f.hint));
    }
    emit(None, &text)?;
    Ok(Outcome::Fail)
}
