//! Atomic file output: write to a temporary file in the destination's directory,
//! fsync it, rename it over the final name, fsync the directory. A crash or an error
//! midway leaves no file under the final name, and the previous file (if any) intact.
//! `write_atomic_verified` also lets the caller inspect the finished temporary file
//! before the rename (`export --strict` gates it there), so a rejected file never
//! appears under the final name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What to do when the destination already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it (for derived files such as reports and fingerprints).
    Allow,
    /// Fail with `AlreadyExists` (for expensive outputs the user must opt in to replacing).
    Refuse,
}

/// Write `path` atomically with the bytes `fill` produces.
pub fn write_atomic<F>(path: &Path, overwrite: Overwrite, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    write_atomic_verified(path, overwrite, fill, |_| Ok(()))
}

/// [`write_atomic`], with `verify(temp_path)` run on the complete, synced temporary
/// file before the rename; an error from it removes the temporary file and leaves the
/// final name untouched.
pub fn write_atomic_verified<F, V>(
    path: &Path,
    overwrite: Overwrite,
    fill: F,
    verify: V,
) -> io::Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
    V: FnOnce(&Path) -> io::Result<()>,
{
    if overwrite == Overwrite::Refuse && path.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} already exists (use --force to replace it)",
                path.display()
            ),
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name")
    })?;
    let temp = TempPath(dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    )));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp.0)
        .or_else(|e| {
            // A stale temp file from a killed run of this same process id: replace it.
            if e.kind() == io::ErrorKind::AlreadyExists {
                fs::remove_file(&temp.0)?;
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&temp.0)
            } else {
                Err(e)
            }
        })?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    fill(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    verify(&temp.0)?;
    fs::rename(&temp.0, path)?;
    temp.disarm();
    // Make the rename itself durable; not every platform can open a directory.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Write a small text file atomically.
pub fn write_text(path: &Path, overwrite: Overwrite, text: &str) -> io::Result<()> {
    write_atomic(path, overwrite, |w| w.write_all(text.as_bytes()))
}

/// Removes the temporary file unless the rename happened.
struct TempPath(PathBuf);

impl TempPath {
    fn disarm(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let err = write_atomic(&path, Overwrite::Allow, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("killed midway"))
        });
        assert!(err.is_err());
        assert!(!path.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp file left behind"
        );
    }

    #[test]
    fn failed_verification_leaves_nothing_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_text(&path, Overwrite::Allow, "old").unwrap();
        let mut seen = String::new();
        let err = write_atomic_verified(
            &path,
            Overwrite::Allow,
            |w| w.write_all(b"new"),
            |temp| {
                seen = fs::read_to_string(temp)?;
                Err(io::Error::other("rejected"))
            },
        );
        assert!(err.is_err());
        assert_eq!(seen, "new", "verify sees the complete temporary file");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
        write_atomic_verified(&path, Overwrite::Allow, |w| w.write_all(b"new"), |_| Ok(()))
            .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn refuse_keeps_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_text(&path, Overwrite::Refuse, "first").unwrap();
        let err = write_text(&path, Overwrite::Refuse, "second").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        write_text(&path, Overwrite::Allow, "third").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "third");
    }
}
