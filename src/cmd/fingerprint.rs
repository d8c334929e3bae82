//! `gguf-gate fingerprint`: `sha256-<hex>` of a file; `--write` a sidecar, `--verify`
//! against an expected value (exit 1 on a mismatch).

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::progress::Bars;
use super::Outcome;
use crate::cli::FingerprintArgs;
use gguf_gate::atomic::{write_text, Overwrite};
use gguf_gate::fingerprint::{fingerprint_file, sidecar_path, Fingerprint};

pub fn run(args: FingerprintArgs) -> Result<Outcome> {
    let expected = args.verify.as_deref().map(parse_expected).transpose()?;
    let fp = fingerprint_file(&args.model, &Bars)
        .with_context(|| format!("{}", args.model.display()))?;
    println!("{fp}");
    if args.write {
        let path = sidecar_path(&args.model);
        write_text(&path, Overwrite::Allow, &format!("{fp}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    match expected {
        Some(want) if want != fp => {
            eprintln!("fingerprint mismatch: expected {want}, got {fp}");
            Ok(Outcome::Fail)
        }
        _ => Ok(Outcome::Pass),
    }
}

/// `--verify` takes a fingerprint or the path of a file holding one.
fn parse_expected(arg: &str) -> Result<Fingerprint> {
    if arg.starts_with("sha256-") {
        return Ok(arg.parse()?);
    }
    let path = Path::new(arg);
    if !path.exists() {
        bail!("--verify {arg:?}: neither a sha256-... fingerprint nor an existing file");
    }
    let text = gguf_gate::input::read_text_bounded(path, 4096, "fingerprint file")?;
    text.trim()
        .parse()
        .with_context(|| format!("{arg}: does not hold a fingerprint"))
}
