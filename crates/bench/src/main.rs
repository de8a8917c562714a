//! The `ironcd-bench` binary: parse, run one workload, print its summary.

use std::process::ExitCode;

use clap::Parser;
use ironcd_bench::Cli;

/// The load generator shares the machine with the server it measures:
/// mimalloc keeps its own cost (and glibc's arena-lock futexes under
/// many client threads) from eating into the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ironcd-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ironcd_bench::run(&cli.global, &cli.workload)) {
        Ok(report) => {
            if cli.global.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ironcd-bench: {}: {e:#}", cli.workload.name());
            ExitCode::FAILURE
        }
    }
}
