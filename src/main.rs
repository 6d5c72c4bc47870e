//! `epic-operator`: see `cli` for the commands.

use std::process::ExitCode;

use clap::Parser;

// jemalloc hands freed memory back to the system within seconds; glibc's allocator kept the
// operator's RSS at the high-water mark of its busiest moment (measured in BENCHMARKS.md).
// The `heap-profile` feature keeps the system allocator, which heaptrack can follow.
#[cfg(not(feature = "heap-profile"))]
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
    #[cfg(not(feature = "heap-profile"))]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error = %e, "jemalloc background threads unavailable");
    }
    #[cfg(feature = "heap-profile")]
    exit_on_sigterm();
    epic_operator::cli::run(cli).await
}

/// Profiling builds: SIGTERM exits at once, freeing nothing, so the profiler records what was
/// live at that moment as not freed.
#[cfg(feature = "heap-profile")]
fn exit_on_sigterm() {
    use tokio::signal::unix::{SignalKind, signal};
    if let Ok(mut term) = signal(SignalKind::terminate()) {
        tokio::spawn(async move {
            term.recv().await;
            std::process::exit(0);
        });
    }
}
