//! `moip verify-supply`: checks a community's committed token supply against its collateral,
//! from the chain alone, through any Electrum server.

use std::path::PathBuf;

use anyhow::{bail, Context};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Network, Txid};
use clap::Args;
use moip_assets::reserves::verify_supply;
use moip_wallet::{Server, Trust};

#[derive(Args)]
pub(crate) struct VerifySupplyArgs {
    /// The commitment transaction (the community publishes its txid each epoch)
    #[arg(long)]
    commitment: Txid,
    /// The collateral descriptor (the guardians' multisig, as `moip wallet info` shows it)
    #[arg(long)]
    collateral: String,
    /// Electrum server, tcp://host:port or ssl://host:port
    #[arg(long, default_value = "tcp://127.0.0.1:50001")]
    server: String,
    #[arg(long, default_value = "regtest")]
    network: Network,
    /// Accept a self-signed TLS certificate (headers and proofs are still checked)
    #[arg(long)]
    accept_invalid_certs: bool,
    /// Where to keep the watch-only view of the collateral between runs
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub(crate) fn run(args: VerifySupplyArgs) -> anyhow::Result<()> {
    let mut server = Server::new(args.server.clone(), Trust::ThirdParty);
    server.accept_invalid_certs = args.accept_invalid_certs;
    // One watch-only view per descriptor, so runs for different communities do not mix.
    let tag = sha256::Hash::hash(args.collateral.as_bytes()).to_string();
    let dir = args
        .data_dir
        .unwrap_or_else(|| crate::default_data_dir().join("verify-supply"))
        .join(&tag[..16]);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let report = verify_supply(
        &server,
        args.network,
        &args.collateral,
        args.commitment,
        &dir,
    )
    .with_context(|| format!("verifying commitment {}", args.commitment))?;
    println!(
        "commitment:  {} (confirmed at height {})",
        args.commitment, report.height
    );
    println!("supply root: {}", report.commitment.root);
    println!("supply:      {} tokens", report.commitment.sum);
    println!(
        "collateral:  {} sat (confirmed)",
        report.collateral.to_sat()
    );
    if !report.covered {
        bail!(
            "NOT COVERED: {} tokens committed against {} sat of collateral",
            report.commitment.sum,
            report.collateral.to_sat()
        );
    }
    println!("covered:     yes — the committed supply does not exceed the collateral");
    Ok(())
}
