//! Deposits becoming collateral: on-chain coins of the community's collateral descriptor once
//! they have enough confirmations, Lightning payments to the pool node once settled.
//!
//! Each source is credited once — the ledger refuses a second deposit from the same outpoint or
//! payment hash — so these can run as often as wanted (after every block, on every payment
//! event) and after a crash, without counting anything twice.

use std::sync::Mutex;

use moip_lightning::{PaymentHash, PaymentRail, PaymentState};
use moip_wallet::{MoipWallet, WalletError};

use crate::ledger::{CollateralSource, JournalStore, Ledger, LedgerError, Receipt, TokenLedger};
use crate::util::{hex, lock};

/// Why deposits could not be credited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollateralError {
    /// The collateral wallet failed to sync.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The ledger refused or its store failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The node failed.
    #[error("lightning: {0}")]
    Lightning(String),
}

fn credit<S: JournalStore>(
    ledger: &mut Ledger<S>,
    sats: u64,
    source: CollateralSource,
) -> Result<Option<Receipt>, LedgerError> {
    match ledger.deposit(sats, source) {
        Ok(receipt) => Ok(Some(receipt)),
        Err(LedgerError::DuplicateDeposit(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Syncs the collateral `wallet` (watch-only is enough) and credits every unspent coin with at
/// least `min_conf` confirmations that is not credited yet; returns the new deposits.
///
/// # Errors
/// [`CollateralError`] when the wallet cannot sync or the ledger's store fails.
pub fn credit_onchain_deposits<S: JournalStore>(
    wallet: &mut MoipWallet,
    ledger: &Mutex<Ledger<S>>,
    min_conf: u32,
) -> Result<Vec<(String, u64)>, CollateralError> {
    let report = wallet.sync()?;
    let mut credited = Vec::new();
    let mut ledger = lock(ledger);
    for coin in wallet.coins() {
        let Some(height) = confirmation_height(&coin) else {
            continue;
        };
        if report.tip.saturating_sub(height) + 1 < min_conf.max(1) {
            continue;
        }
        let outpoint = coin.outpoint.to_string();
        let sats = coin.txout.value.to_sat();
        let source = CollateralSource::OnChain {
            outpoint: outpoint.clone(),
        };
        if credit(&mut ledger, sats, source)?.is_some() {
            credited.push((outpoint, sats));
        }
    }
    Ok(credited)
}

fn confirmation_height(coin: &bdk_wallet::LocalOutput) -> Option<u32> {
    match coin.chain_position {
        bdk_wallet::chain::ChainPosition::Confirmed { anchor, .. } => Some(anchor.block_id.height),
        bdk_wallet::chain::ChainPosition::Unconfirmed { .. } => None,
    }
}

/// Credits the Lightning payment `hash` to the pool node, if the node received it and it is
/// settled; `Ok(None)` when it is not (yet), or was credited before.
///
/// # Errors
/// [`CollateralError`] when the node or the ledger fails.
pub async fn credit_lightning_deposit<S: JournalStore>(
    rail: &dyn PaymentRail,
    ledger: &Mutex<Ledger<S>>,
    hash: PaymentHash,
) -> Result<Option<Receipt>, CollateralError> {
    let record = rail
        .payment_by_hash(hash)
        .await
        .map_err(|e| CollateralError::Lightning(e.to_string()))?;
    let Some(record) = record else {
        return Ok(None);
    };
    if !record.inbound || record.state != PaymentState::Succeeded {
        return Ok(None);
    }
    let sats = record.amount_msat.unwrap_or(0) / 1000;
    if sats == 0 {
        return Ok(None);
    }
    let source = CollateralSource::Lightning {
        payment_hash: hex(&hash.0),
    };
    let mut ledger = lock(ledger);
    Ok(credit(&mut ledger, sats, source)?)
}
