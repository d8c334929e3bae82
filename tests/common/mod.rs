//! Shared helpers for the integration tests: locating the real models and the reference
//! (gguf-py), skipping loudly when they are absent (and failing instead when
//! `GGUF_GATE_NO_SKIP=1`, as `.ci/run` sets), running the binary, and building raw
//! GGUF bytes field by field for malformed-input tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Skip a test that needs something absent — or fail, when skipping is not allowed.
pub fn skip(reason: &str) {
    if std::env::var_os("GGUF_GATE_NO_SKIP").is_some_and(|v| v == "1") {
        panic!("required for this run (GGUF_GATE_NO_SKIP=1) but missing: {reason}");
    }
    eprintln!("\n*** SKIPPED: {reason} ***\n*** run scripts/fetch-models.sh and `pip install -r requirements-dev.txt` to run it ***\n");
}

pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GGUF_GATE_MODELS") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("gguf-gate").join("models")
}

/// The SmolLM2 model, or `None` (after a loud skip) when it has not been fetched.
pub fn smollm2() -> Option<PathBuf> {
    let path = models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.is_file() {
        Some(path)
    } else {
        skip(&format!("{} not found", path.display()));
        None
    }
}

pub const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// `python3` with the `gguf` package importable, or `None` after a loud skip.
pub fn python_with_gguf() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import gguf, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some("python3")
    } else {
        skip("python3 with the `gguf` package (llama.cpp's gguf-py) is not available");
        None
    }
}

/// Run tests/py/gguf_reference.py.
pub fn reference(cmd: &str, file: &Path) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/gguf_reference.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(cmd)
        .arg(file)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "gguf_reference.py {cmd} {} failed:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The gguf-gate binary under test.
pub fn gguf_gate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gguf-gate"))
}

pub fn run(args: &[&str]) -> Output {
    gguf_gate().args(args).output().expect("run gguf-gate")
}

/// Raw GGUF bytes, field by field, for files the writer would refuse to produce.
#[derive(Clone, Default)]
pub struct Raw(pub Vec<u8>);

impl Raw {
    /// Magic, version, tensor count, key count.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn str(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64).bytes(s)
    }
    /// A key with a u32 value.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key.as_bytes()).u32(4).u32(v)
    }
    /// A key with a string value.
    pub fn kv_str(&mut self, key: &str, v: &[u8]) -> &mut Self {
        self.str(key.as_bytes()).u32(8).str(v)
    }
    /// A tensor info record.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name.as_bytes()).u32(dims.len() as u32);
        for d in dims {
            self.u64(*d);
        }
        self.u32(ty).u64(offset)
    }
    /// Zero padding up to a multiple of `align`.
    pub fn pad(&mut self, align: usize) -> &mut Self {
        while self.0.len() % align != 0 {
            self.0.push(0);
        }
        self
    }
    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    pub fn build(&self) -> Vec<u8> {
        self.0.clone()
    }
}
