//! Wallets on the embedded regtest chain, synced through moip's Electrum server.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bip39::Mnemonic;
use bitcoin::Network;
pub use moip_testenv::{wait_until, Regtest};
use moip_wallet::{KdfParams, Keys, MoipWallet, Server, Trust, Unlock, WalletKind};

pub const WAIT: Duration = Duration::from_secs(60);
pub const PASSWORD: &str = "correct horse battery staple";

pub fn mnemonic(byte: u8) -> Mnemonic {
    Mnemonic::from_entropy(&[byte; 16]).expect("entropy")
}

pub fn server(env: &Regtest) -> Server {
    Server::new(env.electrum_url(), Trust::MyNode)
}

/// A seed wallet of `kind` in `dir` from a fixed mnemonic.
pub fn seed_wallet(env: &Regtest, dir: &Path, kind: WalletKind, byte: u8) -> MoipWallet {
    MoipWallet::create(
        dir,
        Network::Regtest,
        kind,
        Keys::Seed {
            mnemonic: mnemonic(byte),
            passphrase: String::new(),
            password: PASSWORD.into(),
        },
        server(env),
        KdfParams::INSECURE_FAST,
    )
    .expect("create wallet")
}

pub fn unlock() -> Option<Unlock<'static>> {
    Some(Unlock {
        password: PASSWORD,
        passphrase: "",
    })
}

/// Syncs until `check` holds (the index follows the node within milliseconds, but a sync may
/// start just before a block lands).
pub fn sync_until(wallet: &mut MoipWallet, what: &str, check: impl Fn(&MoipWallet) -> bool) {
    wait_until(WAIT, what, || {
        wallet.sync().expect("sync");
        check(wallet).then_some(())
    });
}
