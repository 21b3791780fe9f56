//! `benchmark`: measures n2n-rs layer by layer. Modes so far:
//! - `sn-load`: a real `supernode` process under N simulated edges (real edge cores over UDP),
//!   reporting its idle and loaded memory and how long registration took.

mod snload;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "benchmark", version, about = "n2n-rs benchmark")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Supernode load: N edges in M communities registering and heartbeating.
    SnLoad(snload::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(n2n_common::config::go_style_args(std::env::args()));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("benchmark: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.mode {
        Mode::SnLoad(o) => rt.block_on(snload::run(o)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark: {e:#}");
            ExitCode::FAILURE
        }
    }
}
