//! The `stackshot` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    stackshot::cli::main(stackshot::cli::Cli::parse()).await
}
