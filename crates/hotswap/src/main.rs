//! `hotswap`: the server (`hotswap server`) and the client CLI in one binary.
//! This file only parses arguments and wires the parts together.

use clap::{Parser, Subcommand};

mod fleet;
mod server;

#[derive(Parser)]
#[command(
    name = "hotswap",
    version,
    about = "HotSwap: serverless functions with live, safe version swaps"
)]
struct Cli {
    #[command(flatten)]
    client: hotswap_cli::ClientArgs,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the all-in-one server (API, storage, and later the runner).
    Server(server::ServerArgs),
    #[command(flatten)]
    Client(hotswap_cli::Command),
}

fn main() {
    // Inside a sandbox, before anything else: no argument parser, no runtime.
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some(hotswap_sandbox::INIT_SUBCOMMAND) {
        std::process::exit(hotswap_sandbox::init::run(&raw[2..]));
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => match server::run(args).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            },
            Command::Client(cmd) => hotswap_cli::run(&cli.client, cmd).await,
        }
    });
    std::process::exit(code);
}
