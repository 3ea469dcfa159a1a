//! The supply proof: the community's collateral on chain in its guardians' 2-of-3 taproot
//! multisig, the ledger's supply root committed in a transaction, and the check anyone can
//! run from the chain alone ([`verify_supply`]) finding the committed supply covered.
//!
//! Collateral held in Lightning channels is invisible to that check, so the community node
//! first pays as much as its ledger holds, from its on-chain wallet, to the guardians (a real
//! community would sweep its channels). The commitment is paid from the community's operations
//! wallet: spending the multisig would need two guardians' signatures.

use std::path::Path;

use anyhow::{bail, Context};
use bitcoin::hex::DisplayHex;
use bitcoin::{Address, Amount, FeeRate, Network, Txid};
use moip_assets::commitment::SupplyCommitment;
use moip_assets::ledger::TokenLedger;
use moip_assets::reserves::{commit_supply, verify_supply, ReservesError, SupplyReport};
use moip_wallet::collateral::collateral_key;
use moip_wallet::{
    generate_mnemonic, CollateralPolicy, Fee, KdfParams, Keys, MoipWallet, Server, Trust,
    WalletKind,
};

use super::community::SYMBOL;
use super::stack::Stack;
use super::{wait_until, Narrator, WAIT};

/// Blocks the recovery key must wait before moving a coin alone (a day).
const RECOVERY_BLOCKS: u16 = 144;

/// What the supply proof found, for the summary.
pub(super) struct Proof {
    /// Tokens committed.
    pub(super) supply: u64,
    /// Confirmed sats of the guardians' multisig.
    pub(super) collateral: u64,
    /// The commitment transaction.
    pub(super) txid: Txid,
    /// The block that confirmed it.
    pub(super) height: u32,
}

/// The guardians' collateral wallet (watch-only: the demo keeps no guardian's key) and the
/// community's operations wallet.
pub(super) struct Reserve {
    collateral: MoipWallet,
    operations: MoipWallet,
    /// The collateral's descriptor, which the community publishes for the check.
    descriptor: String,
    server: Server,
}

impl Reserve {
    /// Creates both wallets in `dir`, synced through `electrum_url`. The guardians' and the
    /// recovery key come from mnemonics made and forgotten here; the operations wallet's seed
    /// is sealed under a password that is also forgotten (the wallet stays open for the run).
    pub(super) fn create(dir: &Path, electrum_url: &str) -> anyhow::Result<Reserve> {
        let server = Server::new(electrum_url.to_owned(), Trust::Community);
        let key = || -> anyhow::Result<String> {
            let mnemonic = generate_mnemonic(12)?;
            Ok(collateral_key(&mnemonic, "", Network::Regtest)?
                .0
                .to_string())
        };
        let policy = CollateralPolicy {
            threshold: 2,
            guardians: vec![key()?, key()?, key()?],
            recovery: key()?,
            recovery_blocks: RECOVERY_BLOCKS,
        };
        let descriptor = policy.descriptor()?;
        let collateral = MoipWallet::create(
            &dir.join("collateral"),
            Network::Regtest,
            WalletKind::Collateral { policy },
            Keys::WatchOnly {
                external: descriptor.clone(),
                internal: None,
            },
            server.clone(),
            KdfParams::DEFAULT,
        )
        .context("creating the collateral wallet")?;
        let password: [u8; 32] = rand::random();
        let operations = MoipWallet::create(
            &dir.join("operations"),
            Network::Regtest,
            WalletKind::Bip86,
            Keys::Seed {
                mnemonic: generate_mnemonic(12)?,
                passphrase: String::new(),
                password: password.to_lower_hex_string(),
            },
            server.clone(),
            KdfParams::DEFAULT,
        )
        .context("creating the operations wallet")?;
        Ok(Reserve {
            collateral,
            operations,
            descriptor,
            server,
        })
    }

    /// An address of the operations wallet (it is funded by a coinbase).
    pub(super) fn operations_address(&mut self) -> anyhow::Result<Address> {
        Ok(self.operations.receive()?.address)
    }

    /// An address of the guardians' multisig.
    fn collateral_address(&mut self) -> anyhow::Result<Address> {
        Ok(self.collateral.receive()?.address)
    }

    /// Waits until the operations wallet can spend its coinbase.
    pub(super) fn wait_operations_funded(&mut self) -> anyhow::Result<Amount> {
        let operations = &mut self.operations;
        wait_until(WAIT, "the operations wallet's coinbase", || {
            if let Err(e) = operations.sync() {
                return Some(Err(e));
            }
            let confirmed = operations.balance().confirmed;
            (confirmed > Amount::ZERO).then_some(Ok(confirmed))
        })?
        .context("syncing the operations wallet")
    }

    /// Moves the ledger's collateral on chain to the guardians, commits the ledger's supply
    /// root, confirms both and checks the commitment as anyone could.
    ///
    /// # Errors
    /// Also when the check finds the supply not covered.
    pub(super) fn prove(
        &mut self,
        stack: &Stack,
        ledger: &impl TokenLedger,
        workdir: &Path,
        say: &Narrator,
    ) -> anyhow::Result<Proof> {
        let (supply, collateral) = (ledger.supply(), ledger.collateral());
        let address = self.collateral_address()?;
        stack
            .community
            .send_onchain(&address.to_string(), collateral)
            .context("moving the collateral on chain")?;
        say.step(format!(
            "the community node pays the ledger's collateral, {collateral} sat, from its on-chain \
             wallet to the guardians' 2-of-3 taproot multisig"
        ));
        let commitment: SupplyCommitment = ledger.supply_root().into();
        let txid = self.commit(&commitment)?;
        say.step(format!(
            "the operations wallet commits the ledger's supply root ({supply} {SYMBOL}) in {txid}"
        ));
        let height = stack.mine(1)?;
        self.wait_collateral(collateral)?;
        say.step(format!("block {height} confirms both"));
        let report = self.verify(txid, workdir)?;
        say.step(format!(
            "verify_supply, from the chain alone through Electrum: {} {SYMBOL} committed at \
             height {}, {} sat of collateral: {}",
            report.commitment.sum,
            report.height,
            report.collateral.to_sat(),
            if report.covered {
                "covered"
            } else {
                "NOT COVERED"
            }
        ));
        if !report.covered || report.commitment != commitment {
            bail!("the supply proof failed: {report:?}");
        }
        Ok(Proof {
            supply,
            collateral: report.collateral.to_sat(),
            txid,
            height: report.height,
        })
    }

    /// Commits `commitment` from the operations wallet; unconfirmed until the next block.
    fn commit(&mut self, commitment: &SupplyCommitment) -> anyhow::Result<Txid> {
        self.operations.sync()?;
        let fee = Fee::Rate(FeeRate::from_sat_per_vb(2).context("fee rate")?);
        Ok(commit_supply(&mut self.operations, commitment, fee)?)
    }

    /// Waits until the guardians' multisig holds `sats` confirmed.
    fn wait_collateral(&mut self, sats: u64) -> anyhow::Result<()> {
        let collateral = &mut self.collateral;
        wait_until(WAIT, "the collateral to confirm", || {
            if let Err(e) = collateral.sync() {
                return Some(Err(e));
            }
            (collateral.balance().confirmed >= Amount::from_sat(sats)).then_some(Ok(()))
        })?
        .context("syncing the collateral wallet")
    }

    /// What anyone can check: the commitment `txid`, confirmed, against the confirmed coins of
    /// the published descriptor — as an outsider would, trusting the server for nothing.
    fn verify(&self, txid: Txid, workdir: &Path) -> anyhow::Result<SupplyReport> {
        let mut outsider = self.server.clone();
        outsider.trust = Trust::ThirdParty;
        let report = wait_until(WAIT, "the commitment to confirm", || {
            let report =
                verify_supply(&outsider, Network::Regtest, &self.descriptor, txid, workdir);
            match report {
                Err(ReservesError::Unconfirmed(_)) => None,
                other => Some(other),
            }
        })??;
        Ok(report)
    }
}
