//! The `gguf-gate` binary: parse the arguments, run the command, map the outcome to an
//! exit code (0 pass, 1 failed, 2 usage or input error). Nothing else.

use std::process::ExitCode;

use clap::Parser;
use gguf_gate::app::{run, Outcome};
use gguf_gate::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Pass) => ExitCode::SUCCESS,
        Ok(Outcome::Fail) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
