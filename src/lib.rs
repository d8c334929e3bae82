//! gguf-gate decides whether a GGUF model file may be released. This is the library:
//! everything but argument parsing and the terminal, which live in the binary
//! (`main.rs`, `cli.rs`, `cmd/`). Data flows one way, and no module imports from a module
//! above it (`tests/layers.rs` checks; `docs/architecture.md` is the map):
//!
//! ```text
//! input, atomic, progress, glob, registry          leaves: named files, atomic writes, progress, globs, rule codes
//! gguf                                             the file format: reader, writer, value types
//! fingerprint, quant, stats, tokenizer             bytes -> hashes, block formats, statistics, token ids
//! infer, probe, quality                            the forward pass; the probe; perplexity and KL on a text
//! policy                                           YAML -> a validated Policy (reads registry)
//! diff                                             two releases -> what changed (one pass over each)
//! rules                                            model + policy -> findings
//! report                                           findings -> human, JSON, JUnit, SARIF, GitHub
//! gate                                             one check: file -> scan -> rules + probe -> Report
//! convert                                          export and quantize: GGUF writers that take a gate
//! inspect                                          the header as text and JSON
//! ```

pub mod atomic;
pub mod convert;
pub mod diff;
pub mod escape;
pub mod fingerprint;
pub mod gate;
pub mod gguf;
pub mod glob;
pub mod infer;
pub mod input;
pub mod inspect;
pub mod policy;
pub mod probe;
pub mod progress;
pub mod quality;
pub mod quant;
pub mod registry;
pub mod report;
pub mod rules;
pub mod stats;
pub mod template;
pub mod tokenizer;
