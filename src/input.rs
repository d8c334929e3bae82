//! Opening the files a user names — a model, a policy, a tokenizer.json, a fingerprint
//! file, a probe baseline, a checkpoint's config — in one place, so that none of them
//! can hang or exhaust the gate. Only regular files are opened (a FIFO, `/dev/zero`, a
//! socket or a directory is refused by name before anything is read, and the open itself
//! never blocks), and whole-file reads stop at a limit (`take(limit + 1)`), so a file that
//! grows while it is read, or a symlink to something huge, is refused instead of read
//! forever.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Why a named file could not be used. `Display` starts with the path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct InputError {
    pub path: PathBuf,
    pub problem: Problem,
}

/// What was wrong with the file, without its path.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Io(io::Error),
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("{bytes} bytes is more than the {limit} bytes a {what} may have")]
    TooLarge {
        what: &'static str,
        bytes: u64,
        limit: u64,
    },
}

impl Problem {
    /// As an `io::Error` (without the path), for callers whose errors wrap one.
    pub fn into_io(self) -> io::Error {
        match self {
            Problem::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

impl InputError {
    fn new(path: &Path, problem: Problem) -> InputError {
        InputError {
            path: path.to_path_buf(),
            problem,
        }
    }

    /// The underlying I/O error kind (`NotFound`, ...), when there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match &self.problem {
            Problem::Io(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// What a non-regular file is, in words.
fn describe(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Open `path` for reading when it is a regular file (symlinks are followed), and return
/// it with its length. The open does not block on a FIFO swapped in after the check.
pub fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    let io_err = |e| InputError::new(path, Problem::Io(e));
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if !meta.is_file() {
        return Err(InputError::new(
            path,
            Problem::NotRegular(describe(&meta.file_type())),
        ));
    }
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io_err)?;
    // The path may have changed between the check and the open: check what was opened.
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(InputError::new(
            path,
            Problem::NotRegular(describe(&meta.file_type())),
        ));
    }
    Ok((file, meta.len()))
}

/// The whole of a regular file of at most `limit` bytes; `what` names it in errors
/// ("policy", "tokenizer.json", ...).
pub fn read_bounded(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    let (file, len) = open_regular(path)?;
    let too_large = |bytes| InputError::new(path, Problem::TooLarge { what, bytes, limit });
    if len > limit {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::new(path, Problem::Io(e)))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Like [`read_bounded`], as UTF-8 text.
pub fn read_text_bounded(
    path: &Path,
    limit: u64,
    what: &'static str,
) -> Result<String, InputError> {
    let bytes = read_bounded(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| {
        InputError::new(
            path,
            Problem::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the {what} is not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            )),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, [7u8; 100]).unwrap();
        assert_eq!(read_bounded(&p, 100, "test").unwrap().len(), 100);
        let e = read_bounded(&p, 99, "test").unwrap_err();
        assert!(
            matches!(e.problem, Problem::TooLarge { bytes: 100, .. }),
            "{e}"
        );
        assert!(e.to_string().starts_with(&p.display().to_string()));
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_bounded(dir.path(), 10, "test").unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        #[cfg(unix)]
        {
            let e = read_bounded(Path::new("/dev/zero"), 10, "test").unwrap_err();
            assert!(e.to_string().contains("character device"), "{e}");
            let fifo = dir.path().join("fifo");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                let e = read_bounded(&fifo, 10, "test").unwrap_err();
                assert!(e.to_string().contains("FIFO"), "{e}");
            }
        }
    }

    #[test]
    fn missing_files_and_bad_text_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = read_bounded(&missing, 1, "test").unwrap_err();
        assert_eq!(e.io_kind(), Some(io::ErrorKind::NotFound));
        let p = dir.path().join("bin");
        std::fs::write(&p, [b'a', 0xff, b'b']).unwrap();
        let e = read_text_bounded(&p, 10, "policy").unwrap_err();
        assert!(e.to_string().contains("offset 1"), "{e}");
    }
}
