//! The command line, as clap derive definitions. Parsing only: what each command does
//! lives in `app.rs` and the library modules.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Decide whether a GGUF model file may be released.";

const LONG_ABOUT: &str = "\
gguf-gate checks GGUF model files (llama.cpp's format) before they are released:
it reads the header strictly, reports what is inside, and fingerprints the bytes.

Exit codes: 0 pass, 1 the check failed (e.g. a fingerprint mismatch),
2 usage or input error (unreadable or malformed file, bad arguments).";

const AFTER_HELP: &str = "\
Examples:
  gguf-gate inspect model.gguf                 header, metadata, tensor table
  gguf-gate inspect model.gguf --format json --full > header.json
  gguf-gate fingerprint model.gguf --write     writes model.fingerprint
  gguf-gate fingerprint model.gguf --verify model.fingerprint
  gguf-gate stats model.gguf --filter '*_norm.weight'";

#[derive(Debug, Parser)]
#[command(name = "gguf-gate", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the header: version, every metadata key, the tensor table and a summary.
    #[command(after_help = "\
The JSON shape (documented in docs/inspect.md):
  {\"version\", \"summary\", \"metadata\": [{\"key\",\"type\",\"value\"}...] in file order,
   \"tensors\": [{\"name\",\"type\",\"dims\" (ggml order),\"elements\",\"offset\",\"bytes\"}...]}
Arrays are abbreviated to {\"len\",\"type\",\"head\"} unless --full is given.")]
    Inspect {
        /// The GGUF file to read.
        model: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Show arrays and long strings in full.
        #[arg(long)]
        full: bool,
        /// Write the report to this file (atomically) instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Per-tensor statistics of the true (dequantized) values.
    #[command(after_help = "\
Columns: elements, RMS, mean, std, min, max (over finite values), and counts of NaN,
+-Inf and exact zeros. JSON: {\"tensors\": [{\"name\",\"type\",\"elements\",\"rms\",
\"mean\",\"std\",\"min\",\"max\",\"nan\",\"inf\",\"zeros\"}...], \"errors\": [...]}.
A tensor whose type cannot be decoded is listed under errors and the command exits 2.

Examples:
  gguf-gate stats model.gguf --filter '*_norm.weight'
  gguf-gate stats model.gguf --format json --output stats.json")]
    Stats {
        /// The GGUF file to read.
        model: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Only tensors whose name matches this glob (`*`, `?`); repeat to add more.
        #[arg(long, value_name = "GLOB")]
        filter: Vec<String>,
        /// Write the report to this file (atomically) instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Worker threads (default: all cores). Results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Print the file's fingerprint, `sha256-<64 hex>` of its bytes.
    #[command(after_help = "\
--verify accepts either a fingerprint string or a file containing one (such as
the MODEL.fingerprint that --write makes); a mismatch exits 1.")]
    Fingerprint {
        /// The file to hash (any file; typically a GGUF model).
        model: PathBuf,
        /// Also write the fingerprint beside the model: model.gguf -> model.fingerprint.
        #[arg(long)]
        write: bool,
        /// Compare with an expected fingerprint (a `sha256-...` string or a file holding one).
        #[arg(long, value_name = "FINGERPRINT|FILE")]
        verify: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
