//! `gguf-gate completions SHELL` and `gguf-gate man`: shell completion scripts and the
//! man page, generated from the same clap definitions as `--help`.

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell as Target;

use super::Outcome;
use crate::cli::{Cli, CompletionsArgs, Shell};

pub fn completions(args: CompletionsArgs) -> Result<Outcome> {
    let shell = match args.shell {
        Shell::Bash => Target::Bash,
        Shell::Zsh => Target::Zsh,
        Shell::Fish => Target::Fish,
        Shell::Powershell => Target::PowerShell,
        Shell::Elvish => Target::Elvish,
    };
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "gguf-gate", &mut std::io::stdout());
    Ok(Outcome::Pass)
}

pub fn man() -> Result<Outcome> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    super::emit(None, &String::from_utf8_lossy(&out))?;
    Ok(Outcome::Pass)
}
