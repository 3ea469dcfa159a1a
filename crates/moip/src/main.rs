//! `moip`: Money over IP. One binary that runs a whole community node, layer by layer.

mod apps_cli;
mod beacons_cli;
mod bitcoind;
mod demo;
mod electrum;
mod ln;
mod node;
mod operator_cli;
mod relay;
mod socket;
mod supply;
mod up;
mod wallet;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Money over IP: a Bitcoin stack from the chain up to community work payments.
#[derive(Parser)]
#[command(name = "moip", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a whole community node in one process: chain, Electrum, Lightning, Moneysocket
    /// relay, Nostr relay and the Work service, until Ctrl-C.
    Up(up::UpArgs),
    /// Runs the embedded regtest node (Bitcoin Core's validation via libbitcoinkernel) with a
    /// bitcoind-compatible JSON-RPC and REST interface.
    Node(node::NodeArgs),
    /// Runs the Electrum-protocol server (TCP, TLS, WebSocket, WSS) over the embedded node or a
    /// bitcoind.
    Electrum(electrum::ElectrumArgs),
    /// Wallets over any Electrum server: keys, balances, payments, PSBTs, collateral multisig.
    Wallet(wallet::WalletArgs),
    /// Lightning node on LDK: channels, BOLT11/BOLT12/keysend payments, hold invoices.
    Ln(ln::LnArgs),
    /// Moneysocket relay: pairs a wallet and an app by rendezvous id and forwards their
    /// (encrypted) frames, with size, rate, connection and idle limits.
    Relay(relay::RelayArgs),
    /// Moneysocket consumer: use a wallet through its beacon (balance, invoice, pay).
    Socket(socket::SocketArgs),
    /// The Moneysocket beacons a running `moip up` handed out: list them with their budgets,
    /// revoke one (through its API, as the operator).
    Beacons(beacons_cli::BeaconsArgs),
    /// The NWC apps of a running `moip up`: fund an app's own account from free collateral
    /// (through its API, as the operator).
    Apps(apps_cli::AppsArgs),
    /// Checks a community's committed token supply against its collateral, from the chain
    /// alone (proof of liabilities against proof of reserves).
    VerifySupply(supply::VerifySupplyArgs),
    /// Runs a scripted community end to end on the embedded stack — a Lightning deposit, a task
    /// attested and paid, the reward redeemed, the supply proven on chain — and prints each step.
    Demo(demo::DemoArgs),
}

/// `~/.moip`, or `./.moip` when there is no home directory.
pub(crate) fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".moip")
}

/// Logs to stderr at `MOIP_LOG`'s levels, else at `default`.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MOIP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo's steps are its output: the layers' info logs would bury them.
    init_logging(if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    });
    // The wallet is synchronous (BDK's Electrum client blocks); no runtime needed.
    match cli.command {
        Command::Wallet(args) => return wallet::run(args),
        Command::VerifySupply(args) => return supply::run(args),
        Command::Beacons(args) => return beacons_cli::run(args),
        Command::Apps(args) => return apps_cli::run(args),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Up(args) => runtime.block_on(up::run(args)),
        Command::Node(args) => runtime.block_on(node::run(args)),
        Command::Electrum(args) => runtime.block_on(electrum::run(args)),
        Command::Wallet(_) | Command::VerifySupply(_) | Command::Beacons(_) | Command::Apps(_) => {
            unreachable!("run above")
        }
        // Synchronous like the wallet; the node runs on a runtime of its own.
        Command::Ln(args) => ln::run(args),
        Command::Relay(args) => runtime.block_on(relay::run(args)),
        Command::Socket(args) => runtime.block_on(socket::run(args)),
        // Synchronous: it drives the Lightning nodes, and runs its async parts on its own runtime.
        Command::Demo(args) => demo::run(args),
    }
}
