//! Shared helpers of the chain tests: a node in a temporary directory, keys that sign real
//! P2WPKH and P2TR spends, and event waits with timeouts.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, TapTweak};
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness,
};
use moip_chain::{ChainEvent, ChainSource, EmbeddedNode, NodeConfig};
use tokio::sync::broadcast;

/// A node in a temporary directory that lives as long as the value.
pub struct TestNode {
    pub node: EmbeddedNode,
    pub dir: tempfile::TempDir,
}

impl TestNode {
    pub fn new() -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = EmbeddedNode::open(config(dir.path())).expect("open node");
        TestNode { node, dir }
    }

    /// Shuts the node down cleanly and opens it again on the same directory.
    pub fn restart(self) -> TestNode {
        self.node.shutdown().expect("shutdown");
        let TestNode { node, dir } = self;
        drop(node);
        let node = EmbeddedNode::open(config(dir.path())).expect("reopen node");
        TestNode { node, dir }
    }
}

pub fn config(dir: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(dir);
    // Tests checkpoint explicitly where durability matters.
    config.background_checkpoints = false;
    config
}

/// Serves the node's RPC on a free loopback port, on a runtime that lives as long as the server.
pub fn start_rpc(node: &EmbeddedNode) -> (tokio::runtime::Runtime, moip_chain::rpc::RpcServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = moip_chain::rpc::RpcConfig::local(node, 0);
    let server = rt
        .block_on(moip_chain::rpc::RpcServer::start(node.clone(), config))
        .expect("server");
    (rt, server)
}

/// How a key locks its coins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    P2wpkh,
    P2tr,
}

/// A private key that pays to and signs for one script.
pub struct Key {
    pub secret: SecretKey,
    pub kind: Kind,
}

impl Key {
    pub fn new(seed: u8, kind: Kind) -> Key {
        Key {
            secret: SecretKey::from_slice(&[seed.max(1); 32]).expect("valid key"),
            kind,
        }
    }

    pub fn script(&self) -> ScriptBuf {
        let secp = Secp256k1::new();
        match self.kind {
            Kind::P2wpkh => {
                let pk = CompressedPublicKey(self.secret.public_key(&secp));
                ScriptBuf::new_p2wpkh(&pk.wpubkey_hash())
            }
            Kind::P2tr => {
                let (xonly, _) = Keypair::from_secret_key(&secp, &self.secret).x_only_public_key();
                ScriptBuf::new_p2tr(&secp, xonly, None)
            }
        }
    }

    pub fn address(&self) -> bitcoin::Address {
        bitcoin::Address::from_script(&self.script(), bitcoin::Network::Regtest)
            .expect("standard script")
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
    let mut witnesses = Vec::new();
    {
        let mut cache = SighashCache::new(&tx);
        for (i, (_, prevout, key)) in inputs.iter().enumerate() {
            let witness = match key.kind {
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
                    let sig =
                        secp.sign_ecdsa(&Message::from_digest(hash.to_byte_array()), &key.secret);
                    let sig = bitcoin::ecdsa::Signature {
                        signature: sig,
                        sighash_type: EcdsaSighashType::All,
                    };
                    Witness::p2wpkh(&sig, &pk.0)
                }
                Kind::P2tr => {
                    let keypair = Keypair::from_secret_key(&secp, &key.secret);
                    let tweaked = keypair.tap_tweak(&secp, None);
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
            };
            witnesses.push(witness);
        }
    }
    for (input, witness) in tx.input.iter_mut().zip(witnesses) {
        input.witness = witness;
    }
    tx
}

/// A coinbase output of the block at `height` paid to `key`, as a spendable input.
pub fn coinbase_output(node: &EmbeddedNode, height: u32) -> (OutPoint, TxOut) {
    let hash = node
        .block_hash(height)
        .expect("query")
        .expect("height exists");
    let block = node.block(&hash).expect("query").expect("block exists");
    let cb = &block.txdata[0];
    (
        OutPoint {
            txid: cb.compute_txid(),
            vout: 0,
        },
        cb.output[0].clone(),
    )
}

/// Pays `value` minus `fee` from one input to `to`.
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

pub fn out(tx: &Transaction, vout: u32) -> (OutPoint, TxOut) {
    (
        OutPoint {
            txid: tx.compute_txid(),
            vout,
        },
        tx.output[vout as usize].clone(),
    )
}

/// Waits (up to `timeout`) for an event matching `pred`; panics with `what` otherwise.
pub fn wait_event(
    rx: &mut broadcast::Receiver<ChainEvent>,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&ChainEvent) -> bool,
) -> ChainEvent {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.try_recv() {
            Ok(e) if pred(&e) => return e,
            Ok(_) => continue,
            Err(broadcast::error::TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("event stream broke while waiting for {what}: {e}"),
        }
    }
}

/// Polls `check` with backoff until it yields, or panics after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

pub fn txids(node: &EmbeddedNode) -> Vec<Txid> {
    node.mempool_txids()
}
