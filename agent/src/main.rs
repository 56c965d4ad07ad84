//! `centossrv-agent`: parses the command line and runs it; the work is in the library.

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = agent::cli::Cli::parse();
    match agent::cli::run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::from(agent::cli::EXIT_ERROR)
        }
    }
}
