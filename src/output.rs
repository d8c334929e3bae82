//! Writing a GGUF that gguf-gate produces (`export`, `quantize`): the header and the
//! tensors are streamed into a temporary file through a SHA-256 hasher, the file is
//! gated there under `--strict`, and only then renamed into place — so a failure, a
//! refusal by the gate or a kill midway leaves nothing under the output name, and the
//! fingerprint costs no second read.

use std::cell::RefCell;
use std::io::{self, Write};
use std::path::Path;

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};

use crate::atomic::{write_atomic_verified, Overwrite};
use crate::check::{run_check, CheckOptions};
use crate::fingerprint::Fingerprint;
use crate::gguf::{GgufWriter, WriteError};
use crate::progress::bytes_bar;
use crate::rules::{registry, Finding, Severity};

/// The rule families `--strict` refuses a written file for.
pub const GATE_FAMILIES: &[&str] = &["metadata", "norms", "tensors"];

/// A GGUF that reached its name, or the gate's reasons for refusing it.
#[derive(Debug)]
pub enum Written {
    Done { fingerprint: Fingerprint },
    GateFailed(Vec<Finding>),
}

/// Why nothing was written. `E` is the caller's error for a tensor it could not produce.
#[derive(Debug)]
pub enum OutputError<E> {
    /// The caller's tensor callback failed.
    Tensor(E),
    /// The writer refused (e.g. a tensor of the wrong size).
    Write(WriteError),
    /// `--strict`'s check could not run.
    Gate(String),
    /// The output exists and overwriting was not allowed.
    Exists,
    Io(io::Error),
}

/// Write `writer`'s file to `path`. `tensor(i, sink, bar)` writes tensor `i`'s bytes.
pub fn write_gguf<E>(
    path: &Path,
    overwrite: Overwrite,
    writer: &GgufWriter,
    strict: bool,
    label: &str,
    mut tensor: impl FnMut(usize, &mut dyn Write, &ProgressBar) -> Result<(), E>,
) -> Result<Written, OutputError<E>> {
    let failure: RefCell<Option<OutputError<E>>> = RefCell::new(None);
    let refused: RefCell<Option<Vec<Finding>>> = RefCell::new(None);
    let digest: RefCell<Option<[u8; 32]>> = RefCell::new(None);
    let bar = bytes_bar(writer.file_size(), label);
    let result = write_atomic_verified(
        path,
        overwrite,
        |file| {
            let mut out = Hashing {
                inner: file,
                hasher: Sha256::new(),
            };
            let written = writer.write(&mut out, |i, _, sink| {
                tensor(i, sink, &bar).map_err(|e| {
                    *failure.borrow_mut() = Some(OutputError::Tensor(e));
                    io::Error::other("tensor failed")
                })
            });
            match written {
                Ok(_) => {
                    *digest.borrow_mut() = Some(out.hasher.finalize().into());
                    Ok(())
                }
                Err(e) => {
                    if failure.borrow().is_none() {
                        *failure.borrow_mut() = Some(OutputError::Write(e));
                    }
                    Err(io::Error::other("write failed"))
                }
            }
        },
        |temp| {
            bar.finish_and_clear();
            if !strict {
                return Ok(());
            }
            let failed = strict_gate(temp).map_err(|message| {
                *failure.borrow_mut() = Some(OutputError::Gate(message));
                io::Error::other("gate error")
            })?;
            if failed.is_empty() {
                Ok(())
            } else {
                *refused.borrow_mut() = Some(failed);
                Err(io::Error::other("the strict gate failed"))
            }
        },
    );
    bar.finish_and_clear();
    if let Some(findings) = refused.into_inner() {
        return Ok(Written::GateFailed(findings));
    }
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    match result {
        Ok(()) => Ok(Written::Done {
            fingerprint: Fingerprint(digest.into_inner().unwrap_or_default()),
        }),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(OutputError::Exists),
        Err(e) => Err(OutputError::Io(e)),
    }
}

/// A writer that hashes what passes through it.
struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or(&[]));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `--strict`'s gate: check `path` in strict mode with the default policy and return the
/// failures of the metadata, norm and tensor families. The probe does not run (its family
/// is not gated): `check` the written file to probe it. `Err` is a message: the check
/// could not run.
pub fn strict_gate(path: &Path) -> Result<Vec<Finding>, String> {
    let options = CheckOptions {
        policy: None,
        strict: true,
        fail_level: Severity::Error,
        tokenizer: None,
        record_probe: None,
        probe: false,
    };
    let report = run_check(path, &options).map_err(|e| format!("{e:#}"))?;
    Ok(gate_failures_of(report.findings))
}

/// The failures `--strict` refuses: errors of the metadata, norm and tensor families.
pub fn gate_failures_of(findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|f| {
            f.is_failure()
                && f.severity >= Severity::Error
                && GATE_FAMILIES.contains(&registry::info(f.rule).family)
        })
        .collect()
}
