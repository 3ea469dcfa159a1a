//! Test helpers shared by moip's crates (a dev-dependency only): keys that sign real P2WPKH and
//! P2TR spends with rust-bitcoin's sighash code, and waits that poll with a deadline instead of
//! sleeping and hoping.

pub mod ports;
pub mod postgres;

pub use ports::free_port;

use std::time::{Duration, Instant};

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, TapTweak};
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, CompressedPublicKey, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Witness,
};

/// How a key locks its coins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    P2wpkh,
    P2tr,
}

/// A private key that pays to and signs for one script.
#[derive(Clone)]
pub struct Key {
    pub secret: SecretKey,
    pub kind: Kind,
}

impl Key {
    /// A key from a seed byte (deterministic, for tests only).
    pub fn new(seed: u8, kind: Kind) -> Key {
        Key::from_bytes([seed.max(1); 32], kind)
    }

    /// A key from 32 bytes (must be a valid secp256k1 scalar).
    pub fn from_bytes(bytes: [u8; 32], kind: Kind) -> Key {
        Key {
            secret: SecretKey::from_slice(&bytes).expect("valid key"),
            kind,
        }
    }

    pub fn script(&self) -> ScriptBuf {
        let secp = Secp256k1::new();
        match self.kind {
            Kind::P2wpkh => ScriptBuf::new_p2wpkh(
                &CompressedPublicKey(self.secret.public_key(&secp)).wpubkey_hash(),
            ),
            Kind::P2tr => {
                let (xonly, _) = Keypair::from_secret_key(&secp, &self.secret).x_only_public_key();
                ScriptBuf::new_p2tr(&secp, xonly, None)
            }
        }
    }

    pub fn address(&self) -> Address {
        Address::from_script(&self.script(), Network::Regtest).expect("standard script")
    }
}

/// Builds and signs a transaction spending `inputs` (each locked to its key) to `outputs`.
pub fn sign(
    inputs: &[(OutPoint, TxOut, &Key)],
    outputs: Vec<TxOut>,
    sequence: Sequence,
) -> Transaction {
    let secp = Secp256k1::new();
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|(o, _, _)| TxIn {
                previous_output: *o,
                script_sig: ScriptBuf::new(),
                sequence,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    };
    let prevouts: Vec<TxOut> = inputs.iter().map(|(_, p, _)| p.clone()).collect();
    let mut witnesses = Vec::with_capacity(inputs.len());
    let mut cache = SighashCache::new(&tx);
    for (i, (_, prevout, key)) in inputs.iter().enumerate() {
        witnesses.push(match key.kind {
            Kind::P2wpkh => {
                let pk = CompressedPublicKey(key.secret.public_key(&secp));
                let hash = cache
                    .p2wpkh_signature_hash(
                        i,
                        &prevout.script_pubkey,
                        prevout.value,
                        EcdsaSighashType::All,
                    )
                    .expect("sighash");
                let sig = secp.sign_ecdsa(&Message::from_digest(hash.to_byte_array()), &key.secret);
                Witness::p2wpkh(
                    &bitcoin::ecdsa::Signature {
                        signature: sig,
                        sighash_type: EcdsaSighashType::All,
                    },
                    &pk.0,
                )
            }
            Kind::P2tr => {
                let tweaked = Keypair::from_secret_key(&secp, &key.secret).tap_tweak(&secp, None);
                let hash = cache
                    .taproot_key_spend_signature_hash(
                        i,
                        &Prevouts::All(&prevouts),
                        TapSighashType::Default,
                    )
                    .expect("sighash");
                let sig = secp.sign_schnorr(
                    &Message::from_digest(hash.to_byte_array()),
                    &tweaked.to_keypair(),
                );
                Witness::from_slice(&[sig.as_ref().to_vec()])
            }
        });
    }
    for (input, witness) in tx.input.iter_mut().zip(witnesses) {
        input.witness = witness;
    }
    tx
}

/// Pays `value` minus `fee` from one input to `to`, signalling RBF.
pub fn spend(input: (OutPoint, TxOut), key: &Key, to: ScriptBuf, fee: u64) -> Transaction {
    let value = input.1.value - Amount::from_sat(fee);
    sign(
        &[(input.0, input.1, key)],
        vec![TxOut {
            value,
            script_pubkey: to,
        }],
        Sequence::ENABLE_RBF_NO_LOCKTIME,
    )
}

/// Output `vout` of `tx` as a spendable input.
pub fn out(tx: &Transaction, vout: u32) -> (OutPoint, TxOut) {
    (
        OutPoint {
            txid: tx.compute_txid(),
            vout,
        },
        tx.output[vout as usize].clone(),
    )
}

/// Polls `check` with backoff until it yields, or panics with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}
