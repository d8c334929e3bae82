//! gguf-gate decides whether a GGUF model file may be released. The library holds all
//! of the logic; the binary (`src/main.rs`) only parses arguments and maps outcomes to
//! exit codes. Data flows one way: file -> `gguf` -> reports.

pub mod app;
pub mod atomic;
pub mod cli;
pub mod fingerprint;
pub mod gguf;
pub mod glob;
pub mod infer;
pub mod inspect;
pub mod progress;
pub mod quant;
pub mod stats;
