//! The supply root on chain, once per epoch: the node's operations wallet commits the ledger's
//! supply root (an `OP_RETURN` announcing it and the taproot output that commits to it, see
//! [`moip_assets::reserves::commit_supply`]), and — when the community has published its
//! collateral descriptor — checks each confirmed commitment the way anyone can, from the chain
//! alone ([`verify_supply`]).
//!
//! The operations wallet holds fees only; the collateral stays with the guardians' multisig,
//! whose keys the node never holds. Each commitment is remembered in a small file, so the
//! dashboard shows the last one with its proof, and a restart neither loses nor repeats one.

use std::path::PathBuf;
use std::sync::Mutex;

use bitcoin::{Amount, FeeRate, Network, Txid};
use moip_assets::commitment::SupplyCommitment;
use moip_assets::reserves::{commit_supply, verify_supply, ReservesError};
use moip_wallet::{
    generate_mnemonic, Fee, KdfParams, Keys, MoipWallet, Server, Unlock, WalletError, WalletKind,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::state::{Document, StateError};
use crate::util::lock;

/// Why a commitment could not be made or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The operations wallet failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// Committing or checking failed.
    #[error(transparent)]
    Reserves(#[from] ReservesError),
    /// The record of commitments.
    #[error("{place}: {reason}")]
    Record {
        /// The file or database row.
        place: String,
        /// What failed.
        reason: String,
    },
}

/// One commitment, as the node remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommitmentRecord {
    /// The commitment transaction.
    pub txid: String,
    /// The supply root committed (hex).
    pub root: String,
    /// The supply committed.
    pub sum: u64,
    /// The chain's height when it was made.
    pub made_at: u32,
    /// The block that confirmed it, once it has.
    pub confirmed_at: Option<u32>,
    /// Whether the check found the supply covered by the collateral (`None`: not checked —
    /// unconfirmed, or no collateral descriptor set).
    pub covered: Option<bool>,
    /// The collateral the check found, sats.
    pub collateral_sats: Option<u64>,
}

/// What the node commits with and checks against.
pub struct CommitConfig {
    /// The operations wallet's directory.
    pub dir: PathBuf,
    /// Its password (the node's).
    pub password: String,
    /// The chain's network.
    pub network: Network,
    /// The Electrum server to sync and check through (the node's own).
    pub electrum_url: String,
    /// The guardians' collateral descriptor, when the community has published it.
    pub collateral: Option<String>,
    /// Blocks between commitments (an epoch).
    pub every: u32,
    /// Where the record of past commitments is kept.
    pub record: Document,
}

/// The committer.
pub struct Committer {
    wallet: Mutex<MoipWallet>,
    records: Mutex<Vec<CommitmentRecord>>,
    server: Server,
    config: CommitConfig,
}

fn record_error(place: &str, e: impl std::fmt::Display) -> CommitError {
    CommitError::Record {
        place: place.to_owned(),
        reason: e.to_string(),
    }
}

impl From<StateError> for CommitError {
    fn from(e: StateError) -> CommitError {
        CommitError::Record {
            place: e.place,
            reason: e.reason,
        }
    }
}

/// Most commitments remembered (the oldest are dropped; the chain keeps them all).
const MAX_RECORDS: usize = 1_000;

impl Committer {
    /// Opens the operations wallet in `config.dir` (created, with a fresh seed sealed under the
    /// password, on first start) and the record of past commitments.
    ///
    /// # Errors
    /// The wallet or the record failing.
    pub fn open(config: CommitConfig) -> Result<Committer, CommitError> {
        let server = Server::new(config.electrum_url.clone(), moip_wallet::Trust::Community);
        let wallet = match MoipWallet::open(
            &config.dir,
            Some(Unlock {
                password: &config.password,
                passphrase: "",
            }),
        ) {
            Ok(wallet) => wallet,
            Err(WalletError::NotFound(_)) => MoipWallet::create(
                &config.dir,
                config.network,
                WalletKind::Bip86,
                Keys::Seed {
                    mnemonic: generate_mnemonic(12)
                        .map_err(|e| record_error(&config.dir.display().to_string(), e))?,
                    passphrase: String::new(),
                    password: config.password.clone(),
                },
                server.clone(),
                KdfParams::DEFAULT,
            )?,
            Err(e) => return Err(e.into()),
        };
        let records = match config.record.read()? {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| record_error(&config.record.place(), e))?
            }
            None => Vec::new(),
        };
        Ok(Committer {
            wallet: Mutex::new(wallet),
            records: Mutex::new(records),
            server,
            config,
        })
    }

    /// A fresh address of the operations wallet, to fund its fees.
    ///
    /// # Errors
    /// The wallet failing.
    pub fn address(&self) -> Result<bitcoin::Address, CommitError> {
        Ok(lock(&self.wallet).receive()?.address)
    }

    /// Every commitment remembered, oldest first.
    pub fn records(&self) -> Vec<CommitmentRecord> {
        lock(&self.records).clone()
    }

    /// The collateral descriptor checked against, if any.
    pub fn collateral(&self) -> Option<&str> {
        self.config.collateral.as_deref()
    }

    /// One round, at chain height `tip` with the ledger's current `commitment`: syncs the
    /// wallet, notes the confirmation of the last commitment and checks it, and commits anew
    /// when an epoch has passed and the supply root has changed. Blocking (it talks to the
    /// Electrum server). Returns the new commitment's txid, if one was made.
    ///
    /// # Errors
    /// The wallet, the server or the record failing; a wallet without funds is not an error
    /// (nothing is committed, and the round says so in the log).
    pub fn round(
        &self,
        tip: u32,
        commitment: &SupplyCommitment,
    ) -> Result<Option<Txid>, CommitError> {
        // The records' lock is never held across the network: the dashboard reads them.
        let mut wallet = lock(&self.wallet);
        wallet.sync()?;
        let history = wallet.history();
        let mut last = lock(&self.records).last().cloned();
        if let Some(last) = &mut last {
            if last.confirmed_at.is_none() {
                last.confirmed_at = history
                    .iter()
                    .find(|h| h.txid.to_string() == last.txid)
                    .and_then(|h| h.height);
            }
            if last.confirmed_at.is_some() && last.covered.is_none() {
                if let Some(descriptor) = &self.config.collateral {
                    let txid: Txid = last
                        .txid
                        .parse()
                        .map_err(|e| record_error(&self.config.record.place(), e))?;
                    let report = verify_supply(
                        &self.server,
                        self.config.network,
                        descriptor,
                        txid,
                        &self.config.dir.join("verify"),
                    )?;
                    last.covered = Some(report.covered);
                    last.collateral_sats = Some(report.collateral.to_sat());
                }
            }
        }
        let due = last.as_ref().is_none_or(|last| {
            last.confirmed_at.is_some()
                && tip >= last.made_at.saturating_add(self.config.every)
                && last.root != commitment.root.to_string()
        });
        let mut made = None;
        if due {
            if wallet.balance().confirmed == Amount::ZERO {
                tracing::info!(
                    "the supply commitment waits: the operations wallet has no confirmed coins"
                );
            } else {
                let fee = Fee::Rate(FeeRate::from_sat_per_vb(2).unwrap_or(FeeRate::BROADCAST_MIN));
                made = Some(commit_supply(&mut wallet, commitment, fee)?);
            }
        }
        drop(wallet);
        let mut records = lock(&self.records);
        if let (Some(updated), Some(slot)) = (last, records.last_mut()) {
            *slot = updated;
        }
        if let Some(txid) = made {
            records.push(CommitmentRecord {
                txid: txid.to_string(),
                root: commitment.root.to_string(),
                sum: commitment.sum,
                made_at: tip,
                confirmed_at: None,
                covered: None,
                collateral_sats: None,
            });
            if records.len() > MAX_RECORDS {
                records.remove(0);
            }
        }
        let text = serde_json::to_string_pretty(&*records)
            .map_err(|e| record_error(&self.config.record.place(), e))?;
        self.config.record.write(&text)?;
        Ok(made)
    }
}
