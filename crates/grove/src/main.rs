//! The `grove` binary: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = grove::Cli::parse();
    grove::init_logging();
    match grove::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", grove::error_message(&error));
            ExitCode::from(grove::EXIT_FAILURE)
        }
    }
}
