//! The release fingerprint: `sha256-<64 hex>` of the whole file, streamed in large
//! sequential reads (the `sha2` crate uses the CPU's SHA extensions when present).
//! The same string pins a model in a policy, names it in every report and is written
//! beside exported files.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::progress::Progress;

/// Read size for hashing: large enough to amortise syscalls, small enough for any machine.
pub const HASH_CHUNK_BYTES: usize = 4 << 20;

/// A SHA-256 digest of a file's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of_bytes(bytes: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256-{}", self.hex())
    }
}

/// A string that is not `sha256-` followed by 64 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a fingerprint: expected \"sha256-\" followed by 64 hex digits")]
pub struct ParseFingerprintError(pub String);

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseFingerprintError(s.chars().take(100).collect());
        let hex = s.trim().strip_prefix("sha256-").ok_or_else(err)?;
        if hex.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(err)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| err())?;
        }
        Ok(Fingerprint(out))
    }
}

/// Stream-hash any reader, reporting progress in bytes.
pub fn fingerprint_reader<R: Read>(
    mut reader: R,
    mut progress: impl FnMut(u64),
) -> io::Result<Fingerprint> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK_BYTES];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..n).unwrap_or(&[]));
        progress(n as u64);
    }
    Ok(Fingerprint(hasher.finalize().into()))
}

/// Hash a whole file (a regular file: see `input::open_regular`).
pub fn fingerprint_file(path: &Path, progress: &dyn Progress) -> io::Result<Fingerprint> {
    let (file, len) = crate::input::open_regular(path).map_err(|e| e.problem.into_io())?;
    let count = progress.task("fingerprint", len);
    fingerprint_reader(file, count)
}

/// The sidecar path for a model: `model.gguf` -> `model.fingerprint`.
pub fn sidecar_path(model: &Path) -> std::path::PathBuf {
    if model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        model.with_extension("fingerprint")
    } else {
        let mut name = model.as_os_str().to_owned();
        name.push(".fingerprint");
        name.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_round_trip() {
        let fp = Fingerprint::of_bytes(b"abc");
        let s = fp.to_string();
        assert_eq!(
            s,
            "sha256-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(s.parse::<Fingerprint>(), Ok(fp));
        let streamed = fingerprint_reader(&b"abc"[..], |_| {}).unwrap();
        assert_eq!(streamed, fp);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sha256-",
            "sha256-zz",
            "md5-00",
            &format!("sha256-{}", "g".repeat(64)),
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sidecar_replaces_gguf_extension() {
        assert_eq!(
            sidecar_path(Path::new("a/m.gguf")),
            Path::new("a/m.fingerprint")
        );
        assert_eq!(
            sidecar_path(Path::new("a/m.bin")),
            Path::new("a/m.bin.fingerprint")
        );
    }
}
