//! `epic-operator`: see `cli` for the commands.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    epic_operator::operator::init_tracing();
    // Usage errors exit 1, like kubectl and Terraform: 2 means "drift found" to a CI gate.
    let cli = match epic_operator::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    epic_operator::cli::run(cli).await
}
