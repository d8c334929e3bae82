//! gguf-gate decides whether a GGUF model file may be released. The library holds all
//! of the logic; the binary (`src/main.rs`) only parses arguments and maps outcomes to
//! exit codes. Data flows one way: file -> `gguf` -> `stats` -> `rules` (with `policy`)
//! -> findings -> `report`.

pub mod app;
pub mod atomic;
pub mod check;
pub mod cli;
pub mod export;
pub mod fingerprint;
pub mod gguf;
pub mod glob;
pub mod infer;
pub mod input;
pub mod inspect;
pub mod output;
pub mod policy;
pub mod probe;
pub mod progress;
pub mod quant;
pub mod quantize;
pub mod report;
pub mod rules;
pub mod stats;
pub mod tokenizer;
