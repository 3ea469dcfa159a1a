//! [`MoipWallet`]: a BDK wallet in a directory, synced from an Electrum server through the
//! [`VerifyingClient`].
//!
//! A wallet directory holds:
//! - `wallet.json` — network, kind, server and trust, public descriptors (no secrets);
//! - `seed` — the mnemonic sealed by [`crate::keystore`] (absent for watch-only wallets);
//! - `wallet.sqlite` — BDK's store: revealed addresses, transactions, chain checkpoints;
//! - `headers` — the verified header chain.
//!
//! Opening without a password gives a watch-only view of any wallet: it syncs, shows balances
//! and addresses and builds PSBTs, but cannot sign. Nothing here broadcasts by itself: the
//! application shows a [`Prepared`] transaction to the user and calls
//! [`MoipWallet::broadcast`] only after they confirm.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bdk_electrum::BdkElectrumClient;
use bdk_wallet::descriptor::policy::SatisfiableItem;
use bdk_wallet::error::CreateTxError;
use bdk_wallet::keys::{DescriptorPublicKey, DescriptorSecretKey};
use bdk_wallet::rusqlite::Connection;
use bdk_wallet::template::{Bip84, Bip86};
use bdk_wallet::{
    AddressInfo, Balance, KeychainKind, LoadParams, PersistedWallet, SignOptions, Wallet,
};
use bip39::Mnemonic;
use bitcoin::bip32::Xpriv;
use bitcoin::psbt::Psbt;
use bitcoin::{Address, Amount, FeeRate, Network, OutPoint, ScriptBuf, Transaction, Txid};
use serde::{Deserialize, Serialize};

use crate::collateral::{collateral_key, path_to, CollateralPolicy};
use crate::error::WalletError;
use crate::keystore::{KdfParams, SeedFile};
use crate::trust::Server;
use crate::verify::{HeaderChain, ServerLie, VerifyingClient};

const META: &str = "wallet.json";
const SEED: &str = "seed";
const DB: &str = "wallet.sqlite";
const HEADERS: &str = "headers";
/// Addresses BDK looks past the last used one before it stops scanning (BIP44's gap limit).
pub const DEFAULT_STOP_GAP: usize = 20;
/// Scripts per batched request to the server.
const BATCH: usize = 100;

/// The kind of wallet, fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum WalletKind {
    /// BIP86 single-key taproot from the seed.
    Bip86,
    /// BIP84 native segwit from the seed.
    Bip84,
    /// Descriptors without private keys.
    WatchOnly,
    /// The community collateral multisig; the seed (if any) holds one guardian or the recovery key.
    Collateral { policy: CollateralPolicy },
}

/// What `wallet.json` records.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    network: Network,
    #[serde(flatten)]
    kind: WalletKind,
    server: Server,
    external: String,
    internal: Option<String>,
}

/// The keys a new wallet starts from.
pub enum Keys {
    /// A mnemonic (generated or restored), its optional BIP39 passphrase (never stored), and
    /// the password that seals it on disk.
    Seed {
        mnemonic: Mnemonic,
        passphrase: String,
        password: String,
    },
    /// No secrets: a descriptor (and optionally a change descriptor) or an xpub's descriptor.
    WatchOnly {
        external: String,
        internal: Option<String>,
    },
}

/// How to unlock a wallet's seed when opening it.
pub struct Unlock<'a> {
    pub password: &'a str,
    pub passphrase: &'a str,
}

/// A transaction built and (if the wallet could) signed, waiting for the user's yes.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub psbt: Psbt,
    /// True when every input is signed and finalized, ready to broadcast.
    pub finalized: bool,
    pub fee: Amount,
    pub fee_rate: FeeRate,
    /// Outputs not paying back to this wallet.
    pub payments: Vec<(ScriptBuf, Amount)>,
}

/// Fee rate for a transaction.
#[derive(Clone, Copy, Debug)]
pub enum Fee {
    /// Ask the server for a rate that confirms within this many blocks.
    Target(u16),
    Rate(FeeRate),
}

/// A payment to make.
#[derive(Clone, Debug)]
pub struct SendRequest {
    pub recipients: Vec<(String, Amount)>,
    /// Send everything (of the selected coins, or of the wallet) to this address instead.
    pub drain_to: Option<String>,
    pub fee: Fee,
    /// Coin control: spend exactly these coins (and no others).
    pub coins: Vec<OutPoint>,
    /// Data for an `OP_RETURN` output (at most 80 bytes, the standardness limit), e.g. a
    /// supply commitment's announcement.
    pub data: Option<Vec<u8>>,
}

/// Where a fee rate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeSource {
    Server,
    /// The server had no estimate; the minimum relay rate is used.
    Fallback,
}

/// One transaction as the user sees it.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    pub txid: Txid,
    pub received: Amount,
    pub sent: Amount,
    pub fee: Option<Amount>,
    /// Height of the block that confirmed it, if any.
    pub height: Option<u32>,
    pub time: Option<u64>,
}

/// What a sync found.
#[derive(Clone, Debug)]
pub struct SyncReport {
    pub tip: u32,
    pub transactions: usize,
}

/// A wallet on disk, open.
pub struct MoipWallet {
    dir: PathBuf,
    meta: Meta,
    wallet: PersistedWallet<Connection>,
    db: Connection,
    signing: bool,
    stop_gap: usize,
}

impl MoipWallet {
    /// Creates a wallet in `dir` (which must not hold one).
    pub fn create(
        dir: &Path,
        network: Network,
        kind: WalletKind,
        keys: Keys,
        server: Server,
        kdf: KdfParams,
    ) -> Result<MoipWallet, WalletError> {
        if dir.join(META).exists() {
            return Err(WalletError::Exists(dir.display().to_string()));
        }
        fs::create_dir_all(dir)?;
        let (external, internal) = match (&kind, &keys) {
            (WalletKind::Collateral { policy }, _) => (policy.descriptor()?, None),
            (WalletKind::WatchOnly, Keys::WatchOnly { external, internal }) => {
                (external.clone(), internal.clone())
            }
            (
                WalletKind::Bip86 | WalletKind::Bip84,
                Keys::Seed {
                    mnemonic,
                    passphrase,
                    ..
                },
            ) => {
                let (e, i) = seed_descriptors(&kind, mnemonic, passphrase, network)?;
                (e.0.to_string(), Some(i.0.to_string()))
            }
            _ => {
                return Err(WalletError::Invalid(
                    "this kind of wallet needs different keys".into(),
                ))
            }
        };
        let meta = Meta {
            network,
            kind,
            server,
            external,
            internal,
        };
        // Check the keys against the descriptors before anything is written.
        let keymap = match &keys {
            Keys::Seed {
                mnemonic,
                passphrase,
                ..
            } => Some(keymaps(&meta, mnemonic, passphrase)?),
            Keys::WatchOnly { .. } => None,
        };
        let mut db = Connection::open(dir.join(DB))?;
        let mut params = match &meta.internal {
            Some(internal) => Wallet::create(meta.external.clone(), internal.clone()),
            None => Wallet::create_single(meta.external.clone()),
        }
        .network(network);
        if let Some(keymap) = &keymap {
            for (keychain, map) in keymap {
                params = params.keymap(*keychain, map.clone());
            }
        }
        let wallet = params
            .create_wallet(&mut db)
            .map_err(|e| WalletError::Descriptor(e.to_string()))?;
        if let Keys::Seed {
            mnemonic, password, ..
        } = &keys
        {
            SeedFile::create_with(&dir.join(SEED), mnemonic, password, kdf)?;
        }
        write_meta(dir, &meta)?;
        Ok(MoipWallet {
            dir: dir.to_owned(),
            meta,
            wallet,
            db,
            signing: keymap.is_some(),
            stop_gap: DEFAULT_STOP_GAP,
        })
    }

    /// Opens the wallet in `dir`: able to sign with `unlock`, watch-only without.
    pub fn open(dir: &Path, unlock: Option<Unlock<'_>>) -> Result<MoipWallet, WalletError> {
        let meta_path = dir.join(META);
        if !meta_path.exists() {
            return Err(WalletError::NotFound(dir.display().to_string()));
        }
        let meta: Meta = serde_json::from_slice(&fs::read(&meta_path)?)
            .map_err(|e| WalletError::Storage(format!("{}: {e}", meta_path.display())))?;
        let mut db = Connection::open(dir.join(DB))?;
        let mut params: LoadParams = Wallet::load()
            .descriptor(KeychainKind::External, Some(meta.external.clone()))
            .check_network(meta.network);
        if let Some(internal) = &meta.internal {
            params = params.descriptor(KeychainKind::Internal, Some(internal.clone()));
        }
        let mut signing = false;
        if let Some(unlock) = unlock {
            let seed_path = dir.join(SEED);
            if !seed_path.exists() {
                return Err(WalletError::WatchOnly);
            }
            let mnemonic = SeedFile::open(&seed_path, unlock.password)?;
            for (keychain, map) in keymaps(&meta, &mnemonic, unlock.passphrase)? {
                params = params.keymap(keychain, map);
            }
            signing = true;
        }
        let wallet = params
            .load_wallet(&mut db)
            .map_err(|e| WalletError::Storage(e.to_string()))?
            .ok_or_else(|| WalletError::NotFound(dir.display().to_string()))?;
        Ok(MoipWallet {
            dir: dir.to_owned(),
            meta,
            wallet,
            db,
            signing,
            stop_gap: DEFAULT_STOP_GAP,
        })
    }

    pub fn network(&self) -> Network {
        self.meta.network
    }

    pub fn kind(&self) -> &WalletKind {
        &self.meta.kind
    }

    pub fn server(&self) -> &Server {
        &self.meta.server
    }

    /// Points the wallet at another server (kept in `wallet.json`).
    pub fn set_server(&mut self, server: Server) -> Result<(), WalletError> {
        self.meta.server = server;
        write_meta(&self.dir, &self.meta)
    }

    pub fn can_sign(&self) -> bool {
        self.signing
    }

    /// The public descriptor of the receiving keychain.
    pub fn descriptor(&self) -> &str {
        &self.meta.external
    }

    pub fn set_stop_gap(&mut self, gap: usize) {
        self.stop_gap = gap.max(1);
    }

    /// The underlying BDK wallet, for what this API does not cover.
    pub fn bdk(&self) -> &Wallet {
        &self.wallet
    }

    /// A session with the server, opened with `server.version`.
    fn connect(&self) -> Result<electrum_client::Client, WalletError> {
        connect(&self.meta.server)
    }

    /// A session for syncing: BDK over the verifier, with the verified headers loaded.
    fn client(
        &self,
    ) -> Result<BdkElectrumClient<VerifyingClient<electrum_client::Client>>, WalletError> {
        let chain = HeaderChain::load(self.meta.network, Some(self.dir.join(HEADERS)));
        Ok(BdkElectrumClient::new(VerifyingClient::new(
            self.connect()?,
            chain,
        )))
    }

    /// Maps a client error to the lie the verifier caught, if it caught one.
    fn server_error(&self, lie: Option<ServerLie>, e: electrum_client::Error) -> WalletError {
        if let Some(lie) = lie {
            return WalletError::ServerLied {
                url: self.meta.server.url.clone(),
                lie,
            };
        }
        match e {
            electrum_client::Error::IOError(io) => WalletError::ServerUnreachable {
                url: self.meta.server.url.clone(),
                reason: io.to_string(),
            },
            other => WalletError::Server(other.to_string()),
        }
    }

    /// Scans the wallet's addresses (up to the gap limit past the last used one) and applies
    /// what the server proved. A server caught lying changes nothing.
    pub fn sync(&mut self) -> Result<SyncReport, WalletError> {
        let client = self.client()?;
        let request = self.wallet.start_full_scan().build();
        let update = client
            .full_scan(request, self.stop_gap, BATCH, true)
            .map_err(|e| self.server_error(client.inner.lie(), e))?;
        if let Some(lie) = client.inner.lie() {
            return Err(WalletError::ServerLied {
                url: self.meta.server.url.clone(),
                lie,
            });
        }
        self.wallet.apply_update(update).map_err(|e| {
            WalletError::Server(format!("the server's chain does not connect: {e}"))
        })?;
        self.persist()?;
        client.inner.save_headers()?;
        Ok(SyncReport {
            tip: self.wallet.latest_checkpoint().height(),
            transactions: self.wallet.transactions().count(),
        })
    }

    fn persist(&mut self) -> Result<(), WalletError> {
        self.wallet.persist(&mut self.db)?;
        Ok(())
    }

    /// The next unused receiving address (revealed and remembered).
    pub fn receive(&mut self) -> Result<AddressInfo, WalletError> {
        let info = self.wallet.next_unused_address(KeychainKind::External);
        self.persist()?;
        Ok(info)
    }

    /// Reveals and returns `n` fresh receiving addresses.
    pub fn reveal(&mut self, n: u32) -> Result<Vec<AddressInfo>, WalletError> {
        let infos = (0..n)
            .map(|_| self.wallet.reveal_next_address(KeychainKind::External))
            .collect();
        self.persist()?;
        Ok(infos)
    }

    pub fn balance(&self) -> Balance {
        self.wallet.balance()
    }

    /// Every transaction, newest first (unconfirmed before confirmed).
    pub fn history(&self) -> Vec<HistoryEntry> {
        let mut entries: Vec<HistoryEntry> = self
            .wallet
            .transactions()
            .map(|tx| {
                let (sent, received) = self.wallet.sent_and_received(&tx.tx_node.tx);
                let (height, time) = match tx.chain_position {
                    bdk_wallet::chain::ChainPosition::Confirmed { anchor, .. } => {
                        (Some(anchor.block_id.height), Some(anchor.confirmation_time))
                    }
                    bdk_wallet::chain::ChainPosition::Unconfirmed { last_seen, .. } => {
                        (None, last_seen)
                    }
                };
                HistoryEntry {
                    txid: tx.tx_node.txid,
                    received,
                    sent,
                    fee: self.wallet.calculate_fee(&tx.tx_node.tx).ok(),
                    height,
                    time,
                }
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.height.unwrap_or(u32::MAX)));
        entries
    }

    /// This wallet's transaction that carries `data` in an `OP_RETURN` output, if any, and
    /// whether it is confirmed: how a payer that tags its payments learns, after a crash,
    /// that a payment already went out (sync first).
    ///
    /// # Errors
    /// [`WalletError::Invalid`] for data that cannot be an `OP_RETURN` push.
    pub fn tagged(&self, data: &[u8]) -> Result<Option<(Transaction, bool)>, WalletError> {
        let push = bitcoin::script::PushBytesBuf::try_from(data.to_vec())
            .map_err(|e| WalletError::Invalid(e.to_string()))?;
        let script = ScriptBuf::new_op_return(push);
        Ok(self
            .wallet
            .transactions()
            .find(|tx| {
                tx.tx_node
                    .tx
                    .output
                    .iter()
                    .any(|o| o.script_pubkey == script)
            })
            .map(|tx| {
                let confirmed = matches!(
                    tx.chain_position,
                    bdk_wallet::chain::ChainPosition::Confirmed { .. }
                );
                (tx.tx_node.tx.as_ref().clone(), confirmed)
            }))
    }

    /// Broadcasts a transaction again (a mempool may have lost it); a server that already has
    /// it, in its mempool or in a block, counts as success.
    ///
    /// # Errors
    /// [`WalletError::Broadcast`] when the server refuses it and does not have it.
    pub fn rebroadcast(&self, tx: &Transaction) -> Result<Txid, WalletError> {
        use electrum_client::ElectrumApi;
        let client = self.connect()?;
        let txid = tx.compute_txid();
        match client.transaction_broadcast(tx) {
            Ok(txid) => Ok(txid),
            Err(_) if client.transaction_get(&txid).is_ok() => Ok(txid),
            Err(e) => Err(WalletError::Broadcast(e.to_string())),
        }
    }

    /// Unspent coins (for coin control).
    pub fn coins(&self) -> Vec<bdk_wallet::LocalOutput> {
        self.wallet.list_unspent().collect()
    }

    /// A fee rate from the server's estimate for `target` blocks, or the 1 sat/vB floor.
    pub fn estimate_fee(&self, target: u16) -> Result<(FeeRate, FeeSource), WalletError> {
        use electrum_client::ElectrumApi;
        let btc_per_kvb = self
            .connect()?
            .estimate_fee(target.max(1) as usize)
            .map_err(|e| self.server_error(None, e))?;
        if btc_per_kvb > 0.0 && btc_per_kvb.is_finite() {
            // BTC/kvB to sat/kwu: 1e8 sat per BTC, 4 wu per vB, 1000 vB per kvB.
            let sat_per_kwu = (btc_per_kvb * 1e8 / 4.0).ceil() as u64;
            let rate = FeeRate::from_sat_per_kwu(sat_per_kwu.max(250));
            return Ok((rate, FeeSource::Server));
        }
        Ok((FeeRate::BROADCAST_MIN, FeeSource::Fallback))
    }

    fn fee_rate(&self, fee: Fee) -> Result<FeeRate, WalletError> {
        match fee {
            Fee::Rate(rate) => Ok(rate),
            Fee::Target(target) => Ok(self.estimate_fee(target)?.0),
        }
    }

    /// Parses an address and checks it belongs to this wallet's network.
    pub fn parse_address(&self, s: &str) -> Result<Address, WalletError> {
        parse_address(s, self.meta.network)
    }

    /// Builds (and signs, when it can) a payment. Nothing is broadcast.
    pub fn prepare_send(&mut self, request: &SendRequest) -> Result<Prepared, WalletError> {
        let rate = self.fee_rate(request.fee)?;
        let mut recipients = Vec::new();
        for (address, amount) in &request.recipients {
            let script = self.parse_address(address)?.script_pubkey();
            let limit = script.minimal_non_dust();
            if *amount < limit {
                return Err(WalletError::Dust {
                    amount: *amount,
                    limit,
                });
            }
            recipients.push((script, *amount));
        }
        let drain = match &request.drain_to {
            Some(a) => Some(self.parse_address(a)?.script_pubkey()),
            None => None,
        };
        if recipients.is_empty() && drain.is_none() {
            return Err(WalletError::Invalid("nothing to send".into()));
        }
        let data = match &request.data {
            Some(bytes) if bytes.len() > 80 => {
                return Err(WalletError::Invalid(
                    "OP_RETURN data is limited to 80 bytes".into(),
                ))
            }
            Some(bytes) => Some(
                bitcoin::script::PushBytesBuf::try_from(bytes.clone())
                    .map_err(|e| WalletError::Invalid(e.to_string()))?,
            ),
            None => None,
        };
        let path = self.spending_path(false)?;
        let psbt = {
            let mut builder = self.wallet.build_tx();
            builder.fee_rate(rate);
            builder.set_recipients(recipients);
            if let Some(data) = &data {
                builder.add_data(data);
            }
            if !request.coins.is_empty() {
                builder
                    .add_utxos(&request.coins)
                    .map_err(|e| WalletError::Build(e.to_string()))?;
                builder.manually_selected_only();
            }
            if let Some(script) = drain {
                builder.drain_to(script);
                if request.coins.is_empty() {
                    builder.drain_wallet();
                }
            }
            if let Some(path) = path {
                builder.policy_path(path, KeychainKind::External);
            }
            builder.finish().map_err(build_error)?
        };
        self.finish(psbt)
    }

    /// Replaces unconfirmed `txid` with a higher fee (BIP125 RBF).
    pub fn bump_fee(&mut self, txid: Txid, rate: FeeRate) -> Result<Prepared, WalletError> {
        let tx = self
            .wallet
            .get_tx(txid)
            .ok_or(WalletError::UnknownTx(txid))?;
        if tx.chain_position.is_confirmed() {
            return Err(WalletError::AlreadyConfirmed(txid));
        }
        let psbt = {
            let mut builder = self
                .wallet
                .build_fee_bump(txid)
                .map_err(|e| WalletError::Build(e.to_string()))?;
            builder.fee_rate(rate);
            builder.finish().map_err(build_error)?
        };
        self.finish(psbt)
    }

    /// Child-pays-for-parent: spends this wallet's outputs of unconfirmed `txid` back to
    /// itself with a fee that lifts the pair to `rate`.
    pub fn cpfp(&mut self, txid: Txid, rate: FeeRate) -> Result<Prepared, WalletError> {
        let parent = self
            .wallet
            .get_tx(txid)
            .ok_or(WalletError::UnknownTx(txid))?;
        if parent.chain_position.is_confirmed() {
            return Err(WalletError::AlreadyConfirmed(txid));
        }
        let parent_tx: Arc<Transaction> = parent.tx_node.tx.clone();
        let parent_fee = self
            .wallet
            .calculate_fee(&parent_tx)
            .map_err(|e| WalletError::Build(format!("the parent's fee is unknown: {e}")))?;
        let parent_vsize = parent_tx.vsize() as u64;
        let ours: Vec<OutPoint> = self
            .wallet
            .list_unspent()
            .filter(|o| o.outpoint.txid == txid)
            .map(|o| o.outpoint)
            .collect();
        if ours.is_empty() {
            return Err(WalletError::Build(format!(
                "{txid} pays nothing to this wallet to spend"
            )));
        }
        let change = self
            .wallet
            .next_unused_address(KeychainKind::Internal)
            .script_pubkey();
        let build = |wallet: &mut PersistedWallet<Connection>, fee: Option<Amount>| {
            let mut builder = wallet.build_tx();
            builder
                .add_utxos(&ours)
                .map_err(|e| WalletError::Build(e.to_string()))?;
            builder.manually_selected_only();
            builder.drain_to(change.clone());
            match fee {
                Some(fee) => builder.fee_absolute(fee),
                None => builder.fee_rate(rate),
            };
            builder.finish().map_err(build_error)
        };
        // Size the child at the target rate, then pay for the parent's shortfall too.
        // BDK priced the trial for its signed weight, so the fee tells the child's size; one
        // vbyte more covers a signature that comes out a byte longer.
        let trial = build(&mut self.wallet, None)?;
        let trial_fee = trial.fee().map_err(|e| WalletError::Psbt(e.to_string()))?;
        let child_weight = trial_fee.to_sat() * 1000 / rate.to_sat_per_kwu().max(1);
        let child_vsize = child_weight.div_ceil(4) + 1;
        let wanted = rate
            .fee_vb(parent_vsize + child_vsize)
            .ok_or_else(|| WalletError::Build("fee overflow".into()))?;
        let fee = wanted
            .checked_sub(parent_fee)
            .unwrap_or(Amount::ZERO)
            .max(rate.fee_vb(child_vsize).unwrap_or(Amount::ZERO));
        let psbt = build(&mut self.wallet, Some(fee))?;
        self.finish(psbt)
    }

    /// Builds the recovery key's spend of every coin old enough for it, to `to`.
    /// Refused (with the height it opens at) while no coin has waited its blocks.
    pub fn prepare_recovery(&mut self, to: &str, rate: FeeRate) -> Result<Prepared, WalletError> {
        let WalletKind::Collateral { policy } = &self.meta.kind else {
            return Err(WalletError::Invalid("not a collateral wallet".into()));
        };
        let delay = policy.recovery_blocks as u32;
        let tip = self.wallet.latest_checkpoint().height();
        let coins: Vec<_> = self.wallet.list_unspent().collect();
        if coins.is_empty() {
            return Err(WalletError::NothingToRecover);
        }
        let mut ready = Vec::new();
        let mut opens_at = u32::MAX;
        for coin in &coins {
            match coin.chain_position.confirmation_height_upper_bound() {
                // BIP68: spendable in the block at `height + delay`.
                Some(height) if height + delay <= tip + 1 => ready.push(coin.outpoint),
                Some(height) => opens_at = opens_at.min(height + delay),
                None => {}
            }
        }
        if ready.is_empty() {
            return Err(WalletError::RecoveryLocked {
                opens_at: opens_at.min(u32::MAX - 1),
                tip,
            });
        }
        let to = self.parse_address(to)?.script_pubkey();
        let path = self.spending_path(true)?;
        let psbt = {
            let mut builder = self.wallet.build_tx();
            builder
                .add_utxos(&ready)
                .map_err(|e| WalletError::Build(e.to_string()))?;
            builder.manually_selected_only();
            builder.drain_to(to);
            builder.fee_rate(rate);
            if let Some(path) = path {
                builder.policy_path(path, KeychainKind::External);
            }
            builder.finish().map_err(build_error)?
        };
        self.finish(psbt)
    }

    /// For collateral wallets, the policy path through the guardians' leaf (or the recovery
    /// leaf when `recovery`).
    fn spending_path(
        &self,
        recovery: bool,
    ) -> Result<Option<BTreeMap<String, Vec<usize>>>, WalletError> {
        if !matches!(self.meta.kind, WalletKind::Collateral { .. }) {
            return Ok(None);
        }
        let policy = self
            .wallet
            .policies(KeychainKind::External)
            .map_err(|e| WalletError::Descriptor(e.to_string()))?
            .ok_or_else(|| WalletError::Descriptor("no spending policy".into()))?;
        let want: &dyn Fn(&SatisfiableItem) -> bool = if recovery {
            &|i| matches!(i, SatisfiableItem::RelativeTimelock { .. })
        } else {
            &|i| matches!(i, SatisfiableItem::Multisig { .. })
        };
        path_to(&policy, want)
            .map(Some)
            .ok_or_else(|| WalletError::Descriptor("the policy has no such branch".into()))
    }

    /// Signs what it can and summarizes.
    fn finish(&mut self, mut psbt: Psbt) -> Result<Prepared, WalletError> {
        let finalized = if self.signing {
            self.wallet
                .sign(&mut psbt, SignOptions::default())
                .map_err(|e| WalletError::Sign(e.to_string()))?
        } else {
            false
        };
        self.persist()?;
        self.summarize(psbt, finalized)
    }

    fn summarize(&self, psbt: Psbt, finalized: bool) -> Result<Prepared, WalletError> {
        let fee = psbt.fee().map_err(|e| WalletError::Psbt(e.to_string()))?;
        let vsize = estimated_vsize(&psbt);
        let fee_rate = FeeRate::from_sat_per_kwu(fee.to_sat() * 1000 / (vsize * 4).max(1));
        let payments = psbt
            .unsigned_tx
            .output
            .iter()
            .filter(|o| !self.wallet.is_mine(o.script_pubkey.clone()))
            .map(|o| (o.script_pubkey.clone(), o.value))
            .collect();
        Ok(Prepared {
            psbt,
            finalized,
            fee,
            fee_rate,
            payments,
        })
    }

    /// Adds this wallet's signatures to `psbt`; true when it is then complete.
    pub fn sign_psbt(&mut self, psbt: &mut Psbt) -> Result<bool, WalletError> {
        if !self.signing {
            return Err(WalletError::WatchOnly);
        }
        let options = SignOptions {
            try_finalize: false,
            ..SignOptions::default()
        };
        self.wallet
            .sign(psbt, options)
            .map_err(|e| WalletError::Sign(e.to_string()))?;
        self.finalize_psbt(&mut psbt.clone())
    }

    /// Finalizes `psbt` in place when it has the signatures it needs.
    pub fn finalize_psbt(&self, psbt: &mut Psbt) -> Result<bool, WalletError> {
        self.wallet
            .finalize_psbt(psbt, SignOptions::default())
            .map_err(|e| WalletError::Sign(e.to_string()))
    }

    /// Summarizes a PSBT from elsewhere (to show before signing or broadcasting).
    pub fn inspect(&self, psbt: Psbt) -> Result<Prepared, WalletError> {
        let finalized = all_final(&psbt);
        self.summarize(psbt, finalized)
    }

    /// Broadcasts a finalized transaction through the server and records it as pending.
    /// Call only after the user confirmed what [`Prepared`] shows.
    pub fn broadcast(&mut self, psbt: &Psbt) -> Result<Txid, WalletError> {
        let tx = psbt
            .clone()
            .extract_tx()
            .map_err(|e| WalletError::NotFinal(e.to_string()))?;
        if !all_final(psbt) {
            return Err(WalletError::NotFinal(
                "an input has no final witness".into(),
            ));
        }
        use electrum_client::ElectrumApi;
        let txid = self
            .connect()?
            .transaction_broadcast(&tx)
            .map_err(|e| match e {
                electrum_client::Error::Protocol(v) => WalletError::Broadcast(
                    v.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                ),
                other => self.server_error(None, other),
            })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        self.wallet.apply_unconfirmed_txs([(tx, now)]);
        self.persist()?;
        Ok(txid)
    }
}

/// Every input carries its final witness (or scriptSig).
fn all_final(psbt: &Psbt) -> bool {
    psbt.inputs
        .iter()
        .all(|i| i.final_script_witness.is_some() || i.final_script_sig.is_some())
}

/// A session with `server`, opened with `server.version` (protocol 1.4's result formats, which
/// `electrum-client` speaks).
///
/// # Errors
/// [`WalletError::ServerUnreachable`] when the server cannot be reached or refuses the session.
pub fn connect(server: &Server) -> Result<electrum_client::Client, WalletError> {
    let config = electrum_client::ConfigBuilder::new()
        .timeout(Some(30))
        .retry(1)
        .validate_domain(!server.accept_invalid_certs)
        .build();
    let inner = electrum_client::Client::from_config(&server.url, config).map_err(|e| {
        WalletError::ServerUnreachable {
            url: server.url.clone(),
            reason: e.to_string(),
        }
    })?;
    // Protocol 1.6 servers (ElectrumX 2.0) close a session whose first message is not
    // `server.version`; electrum-client speaks 1.4's result formats, so ask for 1.4.
    use electrum_client::ElectrumApi;
    inner
        .raw_call(
            "server.version",
            [
                electrum_client::Param::String(
                    concat!("moip-wallet ", env!("CARGO_PKG_VERSION")).into(),
                ),
                electrum_client::Param::String("1.4".into()),
            ],
        )
        .map_err(|e| WalletError::ServerUnreachable {
            url: server.url.clone(),
            reason: format!("server.version: {e}"),
        })?;
    Ok(inner)
}

/// A session with `server` that checks what it says: headers from genesis, merkle proofs,
/// transaction hashes (see [`crate::verify`]). The headers are kept in memory only.
///
/// # Errors
/// As [`connect`].
pub fn verifying_client(
    server: &Server,
    network: Network,
) -> Result<VerifyingClient<electrum_client::Client>, WalletError> {
    Ok(VerifyingClient::new(
        connect(server)?,
        HeaderChain::load(network, None),
    ))
}

/// Combines PSBTs for the same transaction signed by different people.
pub fn combine_psbts(psbts: Vec<Psbt>) -> Result<Psbt, WalletError> {
    let mut iter = psbts.into_iter();
    let mut combined = iter
        .next()
        .ok_or_else(|| WalletError::Psbt("nothing to combine".into()))?;
    for other in iter {
        combined
            .combine(other)
            .map_err(|e| WalletError::Psbt(e.to_string()))?;
    }
    Ok(combined)
}

/// Parses an address for `network`, with the mistake named when it belongs to another.
pub fn parse_address(s: &str, network: Network) -> Result<Address, WalletError> {
    let unchecked = Address::from_str(s.trim()).map_err(|_| WalletError::BadAddress(s.into()))?;
    unchecked
        .require_network(network)
        .map_err(|_| WalletError::WrongNetwork {
            address: s.into(),
            expected: network,
        })
}

/// Reads a base64 PSBT (as files and other wallets exchange them).
pub fn psbt_from_base64(s: &str) -> Result<Psbt, WalletError> {
    Psbt::from_str(s.trim()).map_err(|e| WalletError::Psbt(e.to_string()))
}

fn estimated_vsize(psbt: &Psbt) -> u64 {
    // Signed inputs know their witness; unsigned ones are estimated at a taproot key spend.
    let mut tx = psbt.unsigned_tx.clone();
    for (input, txin) in psbt.inputs.iter().zip(tx.input.iter_mut()) {
        if let Some(w) = &input.final_script_witness {
            txin.witness = w.clone();
        } else {
            txin.witness = bitcoin::Witness::from_slice(&[[0u8; 64]]);
        }
    }
    tx.vsize() as u64
}

fn build_error(e: CreateTxError) -> WalletError {
    match e {
        CreateTxError::CoinSelection(insufficient) => WalletError::InsufficientFunds {
            needed: insufficient.needed,
            available: insufficient.available,
        },
        CreateTxError::OutputBelowDustLimit(i) => {
            WalletError::Build(format!("output {i} would be below the dust limit"))
        }
        other => WalletError::Build(other.to_string()),
    }
}

fn write_meta(dir: &Path, meta: &Meta) -> Result<(), WalletError> {
    let json = serde_json::to_vec_pretty(meta).map_err(|e| WalletError::Storage(e.to_string()))?;
    let tmp = dir.join(format!("{META}.tmp"));
    fs::write(&tmp, json)?;
    fs::rename(tmp, dir.join(META))?;
    Ok(())
}

type Pair = (
    bdk_wallet::miniscript::Descriptor<DescriptorPublicKey>,
    bdk_wallet::keys::KeyMap,
);

/// The BIP86/BIP84 receive and change descriptors of a seed, with their keys.
fn seed_descriptors(
    kind: &WalletKind,
    mnemonic: &Mnemonic,
    passphrase: &str,
    network: Network,
) -> Result<(Pair, Pair), WalletError> {
    use bdk_wallet::descriptor::IntoWalletDescriptor;
    use bdk_wallet::template::DescriptorTemplate;
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let seed = mnemonic.to_seed(passphrase);
    let xprv =
        Xpriv::new_master(network, &seed).map_err(|e| WalletError::Descriptor(e.to_string()))?;
    let build = |keychain| -> Result<Pair, WalletError> {
        let template = match kind {
            WalletKind::Bip86 => Bip86(xprv, keychain).build(network),
            WalletKind::Bip84 => Bip84(xprv, keychain).build(network),
            _ => return Err(WalletError::Invalid("not a seed wallet".into())),
        }
        .map_err(|e| WalletError::Descriptor(e.to_string()))?;
        template
            .into_wallet_descriptor(&secp, network)
            .map_err(|e| WalletError::Descriptor(e.to_string()))
    };
    Ok((
        build(KeychainKind::External)?,
        build(KeychainKind::Internal)?,
    ))
}

/// The keys a seed contributes to a wallet's descriptors; an error if it contributes none
/// (the wrong mnemonic or passphrase for this wallet).
fn keymaps(
    meta: &Meta,
    mnemonic: &Mnemonic,
    passphrase: &str,
) -> Result<Vec<(KeychainKind, bdk_wallet::keys::KeyMap)>, WalletError> {
    match &meta.kind {
        WalletKind::Bip86 | WalletKind::Bip84 => {
            let (e, i) = seed_descriptors(&meta.kind, mnemonic, passphrase, meta.network)?;
            if e.0.to_string() != meta.external
                || meta.internal.as_deref() != Some(i.0.to_string().as_str())
            {
                return Err(WalletError::BadMnemonic(
                    "this mnemonic and passphrase belong to another wallet".into(),
                ));
            }
            Ok(vec![
                (KeychainKind::External, e.1),
                (KeychainKind::Internal, i.1),
            ])
        }
        WalletKind::Collateral { policy } => {
            let (public, secret): (DescriptorPublicKey, DescriptorSecretKey) =
                collateral_key(mnemonic, passphrase, meta.network)?;
            let public_str = public.to_string();
            if !policy.guardians.contains(&public_str) && policy.recovery != public_str {
                return Err(WalletError::BadMnemonic(
                    "this mnemonic holds none of the collateral's keys".into(),
                ));
            }
            let mut map = bdk_wallet::keys::KeyMap::new();
            map.insert(public, secret);
            Ok(vec![(KeychainKind::External, map)])
        }
        WalletKind::WatchOnly => Err(WalletError::WatchOnly),
    }
}
