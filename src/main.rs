//! The `gguf-gate` binary: parse the arguments (`cli`), run the command (`cmd`), map the
//! outcome to an exit code (0 pass, 1 failed, 2 usage or input error). The binary is the
//! only place with clap and terminal code; the library (`lib.rs`) has neither. Nothing
//! else here — except making
//! sure that even a bug never reaches the user as Rust's exit 101: a panic anywhere (any
//! thread) prints `gguf-gate: internal error: ...` with a request to report it, and exits 2.

use std::process::ExitCode;

mod cli;
mod cmd;

use clap::Parser;
use cli::Cli;
use cmd::{run, Outcome};

/// Set to any value, makes the binary panic on purpose so the tests can prove the hook.
const FORCE_PANIC_VAR: &str = "GGUF_GATE_TEST_FORCE_PANIC";

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "gguf-gate: internal error: {info}\n\
             This is a bug in gguf-gate, not a problem with your file. Please report it with \
             the command you ran (and the file, if you can share it): \
             https://github.com/gguf-gate/gguf-gate/issues"
        );
        std::process::exit(2);
    }));
    if std::env::var_os(FORCE_PANIC_VAR).is_some() {
        panic!("forced by {FORCE_PANIC_VAR}");
    }
    let cli = Cli::parse();
    // A forced instruction set this CPU cannot run (or an unknown one) is a usage error.
    if let Err(e) = gguf_gate::infer::kernels::Isa::from_env() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(Outcome::Pass) => ExitCode::SUCCESS,
        Ok(Outcome::Fail) => ExitCode::from(1),
        Err(err) => {
            // Errors may quote names from the model: spelled out, continuation lines indented.
            eprintln!(
                "error: {}",
                gguf_gate::escape::visible_lines(&format!("{err:#}"))
            );
            ExitCode::from(2)
        }
    }
}
