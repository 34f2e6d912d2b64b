//! `caravan`: the command line definition and the glue to the crates that do the work.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: ingestion allocates many small, short-lived values per
/// document (parsed JSON, normalised fields, tantivy terms), where glibc spent about a fifth of
/// the server's CPU (`perf`, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (v3 `include/mimalloc.h`, `mi_option_e`; the version is
/// pinned by Cargo.lock): how long freed memory is kept before it is returned to the system.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    /// From the mimalloc library that the `mimalloc` crate links.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// The server keeps the memory it freed instead of returning it after mimalloc's default
/// second: each bulk request allocates and frees megabytes, and memory given back was faulted
/// in again (and zeroed) by the next requests, which cost about a tenth of the server's CPU
/// during ingestion and held its threads on page faults (BENCHMARKS.md, run 5). The process
/// then stays at its peak heap, as with glibc. `MIMALLOC_PURGE_DELAY` (milliseconds) still
/// overrides this.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a global option of the allocator; mimalloc allows it at any time.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if matches!(cli.command, cli::Command::Server(_)) {
        keep_freed_memory();
    }
    let default_log_level = match cli.command {
        cli::Command::Server(_) | cli::Command::Agent(_) | cli::Command::Lb(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
