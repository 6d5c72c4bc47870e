//! `epic-operator`: see `cli` for the commands.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    epic_operator::operator::init_tracing();
    let cli = epic_operator::cli::Cli::parse();
    epic_operator::cli::run(cli).await
}
