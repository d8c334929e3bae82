//! Making the GGUF files gguf-gate gates: `export` (a Hugging Face checkpoint -> a clean
//! F16/BF16/F32 GGUF) and `quantize` (a GGUF -> Q8_0/Q4_0/TQ1_0/TQ2_0/I2_S, norms never
//! quantized), and what they share (`output`: the atomic, hashed, optionally gated GGUF
//! writer and the `.fingerprint` / `.meta.json` sidecars). The gate itself is passed in
//! by the caller, so nothing here depends on the policy or the rules.

pub mod export;
pub mod output;
pub mod quantize;

pub use output::{canonical, file_label, write_gguf, Gate, OutputError, Outputs, Written};
