//! Proof of liabilities against proof of reserves, on chain.
//!
//! Each epoch the community commits its ledger's supply root ([`commit_supply`]): a transaction
//! from a community wallet paying the commitment's taproot output and announcing the root in an
//! `OP_RETURN`. [`verify_supply`] is what anyone can run with nothing but an Electrum server,
//! the commitment's txid and the collateral descriptor: it fetches the transaction, checks it
//! carries a commitment its taproot output really commits to and that it is confirmed (merkle
//! proof into a header chain verified from genesis), sums the confirmed coins of the collateral
//! descriptor (through the same verifying client), and compares: committed supply must not
//! exceed the collateral.
//!
//! What this cannot see: collateral held in Lightning channels (it counts toward the ledger's
//! collateral, not toward this check, until it is swept on chain), and a server that hides
//! collateral coins makes the check fail, never pass.

use std::path::Path;

use bitcoin::{Amount, Network, Txid};
use electrum_client::ElectrumApi;
use moip_wallet::{
    verifying_client, Fee, KdfParams, Keys, MoipWallet, SendRequest, Server, WalletError,
    WalletKind,
};

use crate::commitment::{CommitmentError, SupplyCommitment, COMMITMENT_VALUE};

/// Why a commitment could not be made or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReservesError {
    /// The wallet or the server failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The Electrum server failed or was caught lying.
    #[error("electrum: {0}")]
    Server(String),
    /// The transaction is not a valid commitment.
    #[error(transparent)]
    Commitment(#[from] CommitmentError),
    /// The commitment is not confirmed (yet).
    #[error("the commitment {0} is not confirmed")]
    Unconfirmed(Txid),
    /// The wallet could not sign the commitment alone (a multisig needs its co-signers).
    #[error("the wallet cannot sign the commitment alone")]
    NotSigned,
}

fn server_error(e: electrum_client::Error) -> ReservesError {
    ReservesError::Server(e.to_string())
}

/// Commits `commitment` from `wallet`: pays its taproot output ([`COMMITMENT_VALUE`]) with the
/// announcement in an `OP_RETURN`, signs and broadcasts.
///
/// # Errors
/// [`ReservesError::NotSigned`] when the wallet needs co-signers; wallet errors.
pub fn commit_supply(
    wallet: &mut MoipWallet,
    commitment: &SupplyCommitment,
    fee: Fee,
) -> Result<Txid, ReservesError> {
    let request = SendRequest {
        recipients: vec![(
            commitment.address(wallet.network()).to_string(),
            COMMITMENT_VALUE,
        )],
        drain_to: None,
        fee,
        coins: vec![],
        data: Some(commitment.announcement()),
    };
    let prepared = wallet.prepare_send(&request)?;
    if !prepared.finalized {
        return Err(ReservesError::NotSigned);
    }
    Ok(wallet.broadcast(&prepared.psbt)?)
}

/// What [`verify_supply`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupplyReport {
    /// The commitment read from the chain.
    pub commitment: SupplyCommitment,
    /// The block height that confirmed it.
    pub height: u32,
    /// Confirmed value of the collateral descriptor's coins.
    pub collateral: Amount,
    /// `commitment.sum ≤ collateral`.
    pub covered: bool,
}

/// Checks, from the chain alone through `server`, that the supply committed in transaction
/// `commitment` is covered by the confirmed coins of `collateral_descriptor`. `workdir` holds a
/// watch-only wallet of the descriptor between runs (created on first use).
///
/// # Errors
/// [`ReservesError::Commitment`] for a transaction that is no valid commitment,
/// [`ReservesError::Unconfirmed`], or a server that fails or lies.
pub fn verify_supply(
    server: &Server,
    network: Network,
    collateral_descriptor: &str,
    commitment: Txid,
    workdir: &Path,
) -> Result<SupplyReport, ReservesError> {
    let client = verifying_client(server, network)?;
    // The verifying client checks the transaction hashes to the id asked for.
    let tx = client.transaction_get(&commitment).map_err(server_error)?;
    let (committed, vout) = SupplyCommitment::find_in(&tx)?;
    let script = &tx.output[vout as usize].script_pubkey;
    let height = client
        .script_get_history(script)
        .map_err(server_error)?
        .into_iter()
        .find(|h| h.tx_hash == commitment && h.height > 0)
        .map(|h| h.height as u32)
        .ok_or(ReservesError::Unconfirmed(commitment))?;
    // Checked against the verified header chain: the server cannot invent a confirmation.
    client
        .transaction_get_merkle(&commitment, height as usize)
        .map_err(server_error)?;

    let dir = workdir.join("collateral-watch");
    let mut wallet = match MoipWallet::open(&dir, None) {
        Ok(wallet) if wallet.descriptor() == collateral_descriptor => wallet,
        Ok(_) => {
            return Err(ReservesError::Server(format!(
                "{} watches another descriptor; use another working directory",
                dir.display()
            )))
        }
        Err(WalletError::NotFound(_)) => MoipWallet::create(
            &dir,
            network,
            WalletKind::WatchOnly,
            Keys::WatchOnly {
                external: collateral_descriptor.to_owned(),
                internal: None,
            },
            server.clone(),
            KdfParams::DEFAULT,
        )?,
        Err(e) => return Err(e.into()),
    };
    wallet.set_server(server.clone())?;
    wallet.sync()?;
    let collateral = wallet.balance().confirmed;
    Ok(SupplyReport {
        commitment: committed,
        height,
        collateral,
        covered: committed.sum <= collateral.to_sat(),
    })
}
