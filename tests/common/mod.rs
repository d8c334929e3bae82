//! Shared helpers for the integration tests: locating the real models and the reference
//! (gguf-py) and the committed reference outputs (`tests/reference/`), failing with a
//! fetch hint when a model is absent (skipping only under `GGUF_GATE_ALLOW_SKIP=1`),
//! running the binary, and building raw
//! GGUF bytes field by field for malformed-input tests.
#![allow(dead_code)]

pub mod checkpoint;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A test needs something that is not here (a real model, a Python package). By default
/// that is a failure with a hint on how to fetch it: a skip that shows as `ok` hides a
/// test that never ran. `GGUF_GATE_ALLOW_SKIP=1` (for a quick `cargo test` without the
/// models) turns it into a skip that is printed past the test harness's capture.
pub fn skip(reason: &str) {
    let hint = "fetch the models with `bash scripts/fetch-models.sh` and the Python \
                references with `pip install -r requirements-dev.txt` (or run \
                `bash scripts/test.sh`, which does both)";
    if std::env::var_os("GGUF_GATE_ALLOW_SKIP").is_some_and(|v| v == "1") {
        use std::io::Write as _;
        // Straight to stderr: libtest captures only the print macros.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (GGUF_GATE_ALLOW_SKIP=1): {} — {reason}",
            std::thread::current().name().unwrap_or("test")
        );
        return;
    }
    panic!("missing: {reason}\n  {hint}\n  (set GGUF_GATE_ALLOW_SKIP=1 to skip instead)");
}

/// A reference file committed under `tests/reference/` (see its README for where each
/// came from and the script that regenerates it).
pub fn reference_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(name)
}

/// A JSON reference file from `tests/reference/`, parsed.
pub fn reference_json(name: &str) -> serde_json::Value {
    let path = reference_path(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

/// The Qwen2.5-Coder-1.5B-Instruct Q4_K_M model (qwen2), or `None` after a loud skip.
pub fn qwen() -> Option<PathBuf> {
    let path = models_dir().join("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
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
        while !self.0.len().is_multiple_of(align) {
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

use gguf_gate::gguf::{GgmlType, GgufFile, GgufWriter, TensorInfo, TensorSpec, Value};

/// Rewrite the GGUF at `src` into `dst` with edits: `meta` may change the key list;
/// `tensor` may replace a tensor's type and bytes (return `None` to keep it).
pub fn rewrite(
    src: &Path,
    dst: &Path,
    meta: impl FnOnce(&mut Vec<(String, Value)>),
    mut tensor: impl FnMut(&TensorInfo, &[u8]) -> Option<(GgmlType, Vec<u8>)>,
) {
    let file = GgufFile::open(src).unwrap();
    let mut keys: Vec<(String, Value)> = file
        .header
        .metadata
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect();
    meta(&mut keys);
    let mut w = GgufWriter::new();
    for (k, v) in keys {
        w.add(k, v).unwrap();
    }
    let mut replaced: Vec<Option<Vec<u8>>> = Vec::new();
    for t in &file.header.tensors {
        let data = file.tensor_data(t);
        let (ty, bytes) = match tensor(t, data) {
            Some((ty, bytes)) => (ty, Some(bytes)),
            None => (t.ty, None),
        };
        w.add_tensor(TensorSpec::new(t.name.clone(), ty, &t.dims))
            .unwrap();
        replaced.push(bytes);
    }
    let out = std::fs::File::create(dst).unwrap();
    let mut out = std::io::BufWriter::new(out);
    w.write(&mut out, |i, _, sink| match &replaced[i] {
        Some(bytes) => sink.write_all(bytes),
        None => sink.write_all(file.tensor_data(&file.header.tensors[i])),
    })
    .unwrap();
    use std::io::Write;
    out.flush().unwrap();
}

/// f32 values -> little-endian bytes.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes -> f32 values.
pub fn f32_values(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Q8_0 quantization (ggml's `quantize_row_q8_0_ref`): d = amax/127, q = round(x/d).
pub fn quantize_q8_0(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in x.chunks(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_bits().to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

/// A deterministic pseudo-random value stream (xorshift), uniform in [-1, 1).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 23) as f32) * 2.0 - 1.0
    }

    pub fn fill(&mut self, n: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n).map(|_| offset + scale * self.next()).collect()
    }
}

/// A tiny but healthy llama model (F32 weights, plausible RMS values) that passes the
/// `llama` preset; `edit` may change keys and tensors before writing.
pub fn tiny_llama(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, GgmlType, Vec<u64>, Vec<u8>)>),
) -> PathBuf {
    let (embd, ff, layers, vocab) = (64u64, 128u64, 2u32, 32u64);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    // A byte-level BPE vocabulary the probe can run: space, a-z, 1-4 and one merge "ab".
    let mut tokens: Vec<String> = vec!["Ġ".to_string()];
    tokens.extend((b'a'..=b'z').map(|c| (c as char).to_string()));
    tokens.extend(["1", "2", "3", "4", "ab"].map(String::from));
    assert_eq!(tokens.len() as u64, vocab);
    let mut keys: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("general.name".into(), Value::String("tiny".into())),
        ("llama.context_length".into(), Value::U32(256)),
        ("llama.embedding_length".into(), Value::U32(embd as u32)),
        ("llama.block_count".into(), Value::U32(layers)),
        ("llama.feed_forward_length".into(), Value::U32(ff as u32)),
        ("llama.attention.head_count".into(), Value::U32(4)),
        ("llama.attention.head_count_kv".into(), Value::U32(2)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("llama.rope.freq_base".into(), Value::F32(10000.0)),
        ("general.file_type".into(), Value::U32(0)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(gguf_gate::gguf::Array::String(tokens)),
        ),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(gguf_gate::gguf::Array::String(vec!["a b".into()])),
        ),
    ];
    let mut tensors: Vec<(String, GgmlType, Vec<u64>, Vec<u8>)> = Vec::new();
    let mut add = |name: String, dims: Vec<u64>, scale: f32, offset: f32, rng: &mut Rng| {
        let n = dims.iter().product::<u64>() as usize;
        tensors.push((
            name,
            GgmlType::F32,
            dims,
            f32_bytes(&rng.fill(n, scale, offset)),
        ));
    };
    add(
        "token_embd.weight".into(),
        vec![embd, vocab],
        0.2,
        0.0,
        &mut rng,
    );
    for l in 0..layers {
        add(
            format!("blk.{l}.attn_norm.weight"),
            vec![embd],
            0.1,
            0.3,
            &mut rng,
        );
        add(
            format!("blk.{l}.attn_q.weight"),
            vec![embd, embd],
            0.1,
            0.0,
            &mut rng,
        );
        add(
            format!("blk.{l}.attn_k.weight"),
            vec![embd, 32],
            0.1,
            0.0,
            &mut rng,
        );
        add(
            format!("blk.{l}.attn_v.weight"),
            vec![embd, 32],
            0.1,
            0.0,
            &mut rng,
        );
        add(
            format!("blk.{l}.attn_output.weight"),
            vec![embd, embd],
            0.1,
            0.0,
            &mut rng,
        );
        add(
            format!("blk.{l}.ffn_norm.weight"),
            vec![embd],
            0.1,
            0.3,
            &mut rng,
        );
        add(
            format!("blk.{l}.ffn_gate.weight"),
            vec![embd, ff],
            0.1,
            0.0,
            &mut rng,
        );
        add(
            format!("blk.{l}.ffn_up.weight"),
            vec![embd, ff],
            0.1,
            0.0,
            &mut rng,
        );
        add(
            format!("blk.{l}.ffn_down.weight"),
            vec![ff, embd],
            0.1,
            0.0,
            &mut rng,
        );
    }
    add("output_norm.weight".into(), vec![embd], 0.2, 1.5, &mut rng);
    edit(&mut keys, &mut tensors);
    let mut w = GgufWriter::new();
    for (k, v) in keys {
        w.add(k, v).unwrap();
    }
    let mut data = Vec::new();
    for (name, ty, dims, bytes) in tensors {
        w.add_tensor(TensorSpec::new(name, ty, &dims)).unwrap();
        data.push(bytes);
    }
    let path = dir.join(name);
    std::fs::write(&path, w.to_bytes(&data).unwrap()).unwrap();
    path
}

/// The seeded tiny models of `scripts/tiny-models.py` (`tiny-<arch>.gguf`, byte-identical
/// every run), written once per test binary; `None` (after [`skip`]) without python3 +
/// gguf-py.
pub fn tiny_models_dir() -> Option<&'static PathBuf> {
    static DIR: std::sync::OnceLock<Option<(tempfile::TempDir, PathBuf)>> =
        std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        python_with_gguf()?;
        let dir = tempfile::tempdir().unwrap();
        python_script("scripts/tiny-models.py", &[dir.path().as_os_str()]);
        let path = dir.path().to_path_buf();
        Some((dir, path))
    })
    .as_ref()
    .map(|(_, p)| p)
}

/// A finished command's exit code, stdout and stderr, for assertion messages.
/// `python3 SCRIPT ARGS...` (a script of this repository), which must succeed; its stdout.
pub fn python_script(script: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 {script}: {e}"));
    assert!(out.status.success(), "python3 {script}: {}", text(&out));
    out.stdout
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `gguf-gate export DIR --out OUT EXTRA...`.
pub fn export(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "export",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}
