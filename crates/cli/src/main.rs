//! The `ledgermq` command: `serve` runs a broker node, `passwd` manages the
//! plain-mode password file, `bench` measures a running broker, `device`
//! acts as a provisioned device.

mod admin;
mod bench;
mod device;
mod keys;
mod ledger_cmd;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ledgermq",
    version,
    about = "MQTT broker network with ledger-backed security"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker node.
    Serve(Box<serve::ServeArgs>),
    /// Add or update a user in a password file (argon2id hashes).
    Passwd(serve::PasswdArgs),
    /// Measure throughput, loss and latency of a running MQTT broker.
    Bench(Box<bench::BenchArgs>),
    /// Deploy the contracts, verify the embedded chain, benchmark the registry.
    Ledger(ledger_cmd::LedgerArgs),
    /// Administer the consortium: organisations, brokers, devices, rights.
    Admin(Box<admin::AdminArgs>),
    /// Act as a provisioned device: connect, publish or subscribe (LMQ-OTP-1, TOTP, SCAC).
    Device(Box<device::DeviceArgs>),
    /// Generate keys in a key store (files or a PKCS#11 token); print public keys.
    Keys(keys::KeysArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Passwd(args) => serve::passwd(args),
        Command::Bench(args) => bench::run(*args),
        Command::Ledger(args) => ledger_cmd::run(args),
        Command::Admin(args) => admin::run(*args),
        Command::Device(args) => device::run(*args),
        Command::Keys(args) => keys::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping a cause whose text the previous
/// message already includes.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
