//! The outputs of a conversion (`export`, `quantize`), written the same way for both: a
//! GGUF streamed into a temporary file through a SHA-256 hasher, handed to a gate the
//! caller passes in (`--strict`: the gate is a function argument, so this module knows
//! nothing of policies or rules) and only then renamed into place; then its two
//! sidecars, `.fingerprint` and `.meta.json`. A failure, a refusal by the gate or a kill
//! midway leaves nothing under the output names, the fingerprint costs no second read,
//! and no output may overwrite an input or (without `--force`) an existing file.

use std::cell::RefCell;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::atomic::{write_atomic_verified, write_text, Overwrite};
use crate::fingerprint::Fingerprint;
use crate::gguf::{GgufWriter, WriteError};
use crate::progress::Progress;

/// Why the outputs could not be written. No file is left under the output names.
#[derive(Debug, Error)]
pub enum OutputError {
    #[error("{} already exists (use --force to replace it)", path.display())]
    Exists { path: PathBuf },

    #[error("output {} would overwrite the input {}; choose another output", path.display(), input.display())]
    IsInput { path: PathBuf, input: PathBuf },

    #[error("{}: cannot write the GGUF: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: WriteError,
    },

    #[error("{}: the --strict gate could not run: {message}", path.display())]
    Gate { path: PathBuf, message: String },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl OutputError {
    fn io(path: &Path, source: io::Error) -> OutputError {
        OutputError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A gate run on the finished temporary file before it takes its name: `Ok` with no
/// findings passes, `Ok` with findings refuses the file, `Err` says the gate could not run.
pub type Gate<'a, F> = &'a dyn Fn(&Path) -> Result<Vec<F>, String>;

/// A GGUF that reached its name, or the gate's reasons for refusing it.
#[derive(Debug)]
pub enum Written<F> {
    Done { fingerprint: Fingerprint },
    Refused(Vec<F>),
}

/// The three files a conversion writes: the GGUF and, beside it, its `.fingerprint` and
/// `.meta.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outputs {
    pub gguf: PathBuf,
    pub fingerprint: PathBuf,
    pub meta: PathBuf,
}

impl Outputs {
    /// `X.gguf` -> `X.fingerprint`, `X.meta.json`; a name without `.gguf` gets the
    /// suffixes appended.
    pub fn beside(gguf: PathBuf) -> Outputs {
        let name = gguf
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let base = name
            .strip_suffix(".gguf")
            .or_else(|| name.strip_suffix(".GGUF"))
            .unwrap_or(&name)
            .to_string();
        Outputs {
            fingerprint: gguf.with_file_name(format!("{base}.fingerprint")),
            meta: gguf.with_file_name(format!("{base}.meta.json")),
            gguf,
        }
    }

    fn all(&self) -> [&PathBuf; 3] {
        [&self.gguf, &self.fingerprint, &self.meta]
    }

    /// Refuse outputs that are one of `inputs` (after resolving links and `..`), or that
    /// exist when `force` is off.
    pub fn claim(&self, inputs: &[PathBuf], force: bool) -> Result<(), OutputError> {
        let canonical_inputs: Vec<(PathBuf, &PathBuf)> = inputs
            .iter()
            .filter_map(|p| Some((canonical(p)?, p)))
            .collect();
        for out in self.all() {
            if let Some(c) = canonical(out) {
                if let Some((_, input)) = canonical_inputs.iter().find(|(ci, _)| *ci == c) {
                    return Err(OutputError::IsInput {
                        path: out.clone(),
                        input: (*input).clone(),
                    });
                }
            }
            if !force && out.symlink_metadata().is_ok() {
                return Err(OutputError::Exists { path: out.clone() });
            }
        }
        Ok(())
    }

    /// Write the `.fingerprint` and the `.meta.json` (pretty JSON), atomically.
    pub fn write_sidecars(
        &self,
        fingerprint: Fingerprint,
        meta: &serde_json::Value,
        overwrite: Overwrite,
    ) -> Result<(), OutputError> {
        write_text(&self.fingerprint, overwrite, &format!("{fingerprint}\n"))
            .map_err(|e| OutputError::io(&self.fingerprint, e))?;
        let mut text = serde_json::to_string_pretty(meta)
            .map_err(|e| OutputError::io(&self.meta, e.into()))?;
        text.push('\n');
        write_text(&self.meta, overwrite, &text).map_err(|e| OutputError::io(&self.meta, e))
    }
}

/// `path` made absolute through its existing parent (the file itself may not exist yet).
pub fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some(parent.canonicalize().ok()?.join(path.file_name()?))
}

/// The file name to record in `.meta.json` (never an absolute path: the record must
/// not depend on where the input happened to live).
pub fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Write `writer`'s file to `path`. `tensor(i, sink, count)` writes tensor `i`'s bytes and
/// reports them to `count`. With a `gate`, the finished temporary file must pass it.
/// Errors of the tensor callback are returned as they are; the writer's own become `E`
/// through `From<OutputError>`.
pub fn write_gguf<E, F>(
    path: &Path,
    overwrite: Overwrite,
    writer: &GgufWriter,
    gate: Option<Gate<'_, F>>,
    progress: &dyn Progress,
    label: &str,
    mut tensor: impl FnMut(usize, &mut dyn Write, &dyn Fn(u64)) -> Result<(), E>,
) -> Result<Written<F>, E>
where
    E: From<OutputError>,
{
    let failure: RefCell<Option<E>> = RefCell::new(None);
    let refused: RefCell<Option<Vec<F>>> = RefCell::new(None);
    let digest: RefCell<Option<[u8; 32]>> = RefCell::new(None);
    let count = progress.task(label, writer.file_size());
    let result = write_atomic_verified(
        path,
        overwrite,
        |file| {
            let mut out = Hashing {
                inner: file,
                hasher: Sha256::new(),
            };
            let written = writer.write(&mut out, |i, _, sink| {
                tensor(i, sink, &count).map_err(|e| {
                    *failure.borrow_mut() = Some(e);
                    io::Error::other("tensor failed")
                })
            });
            match written {
                Ok(_) => {
                    *digest.borrow_mut() = Some(out.hasher.finalize().into());
                    Ok(())
                }
                Err(source) => {
                    if failure.borrow().is_none() {
                        *failure.borrow_mut() = Some(
                            OutputError::Write {
                                path: path.to_path_buf(),
                                source,
                            }
                            .into(),
                        );
                    }
                    Err(io::Error::other("write failed"))
                }
            }
        },
        |temp| {
            let Some(gate) = gate else { return Ok(()) };
            let findings = gate(temp).map_err(|message| {
                *failure.borrow_mut() = Some(
                    OutputError::Gate {
                        path: path.to_path_buf(),
                        message,
                    }
                    .into(),
                );
                io::Error::other("gate error")
            })?;
            if findings.is_empty() {
                Ok(())
            } else {
                *refused.borrow_mut() = Some(findings);
                Err(io::Error::other("the gate refused the file"))
            }
        },
    );
    drop(count);
    if let Some(findings) = refused.into_inner() {
        return Ok(Written::Refused(findings));
    }
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    match result {
        Ok(()) => Ok(Written::Done {
            fingerprint: Fingerprint(digest.into_inner().unwrap_or_default()),
        }),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(OutputError::Exists {
            path: path.to_path_buf(),
        }
        .into()),
        Err(e) => Err(OutputError::io(path, e).into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_sit_beside_the_gguf() {
        let o = Outputs::beside(PathBuf::from("dist/m-q8_0.gguf"));
        assert_eq!(o.fingerprint, PathBuf::from("dist/m-q8_0.fingerprint"));
        assert_eq!(o.meta, PathBuf::from("dist/m-q8_0.meta.json"));
        let o = Outputs::beside(PathBuf::from("out.bin"));
        assert_eq!(o.meta, PathBuf::from("out.bin.meta.json"));
    }

    #[test]
    fn outputs_never_replace_inputs_or_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.gguf");
        std::fs::write(&input, b"x").unwrap();
        let same = Outputs::beside(dir.path().join("sub/../in.gguf"));
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(matches!(
            same.claim(std::slice::from_ref(&input), true),
            Err(OutputError::IsInput { .. })
        ));
        let other = Outputs::beside(dir.path().join("out.gguf"));
        assert!(other.claim(std::slice::from_ref(&input), false).is_ok());
        std::fs::write(&other.meta, b"{}").unwrap();
        assert!(matches!(
            other.claim(std::slice::from_ref(&input), false),
            Err(OutputError::Exists { .. })
        ));
        assert!(other.claim(&[input], true).is_ok());
    }
}
