//! `epic-operator`: see `cli` for the commands.

use std::process::ExitCode;

use clap::Parser;

// jemalloc hands freed memory back to the system within seconds; glibc's allocator kept the
// operator's RSS at the high-water mark of its busiest moment (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
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
    epic_operator::operator::init_tracing(cli.log_format);
    // Background threads purge freed pages on a timer, not only when the operator allocates:
    // a quiet operator after a burst (a relist, a first walk) gives the memory back.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error = %e, "jemalloc background threads unavailable");
    }
    epic_operator::cli::run(cli).await
}
