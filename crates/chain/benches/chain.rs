//! Embedded-node benchmarks (run with `cargo bench -p moip-chain --bench chain`):
//! blocks validated per second (empty and 1,000-transaction blocks), transactions accepted to
//! the mempool per second, `generatetoaddress 10000`, and the cost of `invalidateblock` (which
//! rebuilds the chainstate). Generates its own data; prints a Markdown table.

use std::time::Instant;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    Amount, Block, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Witness,
};
use moip_chain::{ChainSource, EmbeddedNode, NodeConfig};

struct Key {
    secret: SecretKey,
    public: CompressedPublicKey,
    script: ScriptBuf,
}

impl Key {
    fn new() -> Key {
        let secp = Secp256k1::new();
        let secret = SecretKey::from_slice(&[42; 32]).expect("key");
        let public = CompressedPublicKey(secret.public_key(&secp));
        let script = ScriptBuf::new_p2wpkh(&public.wpubkey_hash());
        Key {
            secret,
            public,
            script,
        }
    }

    /// A signed P2WPKH transaction spending `inputs` (all ours) to `outputs`.
    fn sign(
        &self,
        secp: &Secp256k1<bitcoin::secp256k1::All>,
        inputs: &[(OutPoint, Amount)],
        outputs: Vec<TxOut>,
    ) -> Transaction {
        let mut tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|(o, _)| TxIn {
                    previous_output: *o,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs,
        };
        let mut witnesses = Vec::with_capacity(inputs.len());
        let mut cache = SighashCache::new(&tx);
        for (i, (_, value)) in inputs.iter().enumerate() {
            let hash = cache
                .p2wpkh_signature_hash(i, &self.script, *value, EcdsaSighashType::All)
                .expect("sighash");
            let sig = secp.sign_ecdsa(&Message::from_digest(hash.to_byte_array()), &self.secret);
            witnesses.push(Witness::p2wpkh(
                &bitcoin::ecdsa::Signature {
                    signature: sig,
                    sighash_type: EcdsaSighashType::All,
                },
                &self.public.0,
            ));
        }
        for (input, w) in tx.input.iter_mut().zip(witnesses) {
            input.witness = w;
        }
        tx
    }
}

fn node(dir: &std::path::Path) -> EmbeddedNode {
    let mut config = NodeConfig::new(dir);
    config.background_checkpoints = false;
    EmbeddedNode::open(config).expect("open node")
}

fn blocks(node: &EmbeddedNode, from: u32) -> Vec<Block> {
    let tip = node.tip().expect("tip").height;
    (from..=tip)
        .map(|h| {
            node.block(&node.block_hash(h).expect("q").expect("hash"))
                .expect("q")
                .expect("block")
        })
        .collect()
}

fn replay(blocks: &[Block], target: &EmbeddedNode) -> f64 {
    let start = Instant::now();
    for b in blocks {
        let verdict = target.submit_block(b).expect("submit");
        assert_eq!(verdict, moip_chain::embedded::BlockSubmission::Accepted);
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    let key = Key::new();
    let secp = Secp256k1::new();
    let mut rows: Vec<(String, String)> = Vec::new();

    // generatetoaddress 10000 on a fresh chain.
    let a_dir = tempfile::tempdir().expect("tempdir");
    let a = node(a_dir.path());
    let start = Instant::now();
    a.generate(10_000, &key.script).expect("mine");
    let secs = start.elapsed().as_secs_f64();
    rows.push((
        "`generatetoaddress 10000` (fresh chain)".into(),
        format!("{secs:.1} s ({:.0} blocks/s)", 10_000.0 / secs),
    ));

    // As `moip node` runs it: background checkpoints make new blocks durable every 2 s.
    let durable_dir = tempfile::tempdir().expect("tempdir");
    let mut config = NodeConfig::new(durable_dir.path());
    config.background_checkpoints = true;
    let durable = EmbeddedNode::open(config).expect("open node");
    let start = Instant::now();
    durable.generate(10_000, &key.script).expect("mine");
    let secs = start.elapsed().as_secs_f64();
    rows.push((
        "`generatetoaddress 10000` with background checkpoints (as `moip node`)".into(),
        format!("{secs:.1} s ({:.0} blocks/s)", 10_000.0 / secs),
    ));
    durable.shutdown().expect("shutdown");
    drop(durable);

    // The same 10,000 empty blocks validated by a second node.
    let empty = blocks(&a, 1);
    let b_dir = tempfile::tempdir().expect("tempdir");
    let b = node(b_dir.path());
    let secs = replay(&empty, &b);
    rows.push((
        "empty blocks validated and connected (kernel + index)".into(),
        format!("{:.0} blocks/s", empty.len() as f64 / secs),
    ));

    // invalidateblock near the tip of a 10,000-block chain rebuilds the chainstate.
    let tip = b.tip().expect("tip");
    let start = Instant::now();
    b.invalidate_block(&tip.hash).expect("invalidate");
    rows.push((
        "`invalidateblock` at height 10,000 (chainstate rebuild)".into(),
        format!("{:.1} s", start.elapsed().as_secs_f64()),
    ));
    drop(b);

    // 1,000-transaction blocks: fan one coinbase out to 1,000 coins, then move every coin once per
    // block. Mempool acceptance is timed while filling each block.
    let c_dir = tempfile::tempdir().expect("tempdir");
    let c = node(c_dir.path());
    c.generate(101, &key.script).expect("mine");
    let (rounds, width) = (20u32, 1_000usize);
    let cb = c
        .block(&c.block_hash(1).expect("q").expect("h"))
        .expect("q")
        .expect("b")
        .txdata[0]
        .clone();
    let each = Amount::from_sat((cb.output[0].value.to_sat() - 1_000_000) / width as u64);
    let fan = key.sign(
        &secp,
        &[(
            OutPoint {
                txid: cb.compute_txid(),
                vout: 0,
            },
            cb.output[0].value,
        )],
        (0..width)
            .map(|_| TxOut {
                value: each,
                script_pubkey: key.script.clone(),
            })
            .collect(),
    );
    c.broadcast(&fan).expect("fan-out");
    c.generate(1, &key.script).expect("mine");
    let first_full = c.tip().expect("tip").height + 1;
    let mut coins: Vec<(OutPoint, Amount)> = (0..width as u32)
        .map(|v| {
            (
                OutPoint {
                    txid: fan.compute_txid(),
                    vout: v,
                },
                each,
            )
        })
        .collect();
    let (mut accept_secs, mut accepted) = (0.0, 0usize);
    for _ in 0..rounds {
        let txs: Vec<Transaction> = coins
            .iter()
            .map(|(o, v)| {
                key.sign(
                    &secp,
                    &[(*o, *v)],
                    vec![TxOut {
                        value: *v - Amount::from_sat(200),
                        script_pubkey: key.script.clone(),
                    }],
                )
            })
            .collect();
        let start = Instant::now();
        for tx in &txs {
            c.broadcast(tx).expect("accept");
        }
        accept_secs += start.elapsed().as_secs_f64();
        accepted += txs.len();
        c.generate(1, &key.script).expect("mine");
        coins = txs
            .iter()
            .map(|t| {
                (
                    OutPoint {
                        txid: t.compute_txid(),
                        vout: 0,
                    },
                    t.output[0].value,
                )
            })
            .collect();
    }
    rows.push((
        "transactions accepted to the mempool (1-in 1-out P2WPKH, kernel script checks)".into(),
        format!("{:.0} tx/s", accepted as f64 / accept_secs),
    ));
    let all = blocks(&c, 1);
    let split = (first_full - 1) as usize;
    let d_dir = tempfile::tempdir().expect("tempdir");
    let d = node(d_dir.path());
    replay(&all[..split], &d);
    let full = &all[split..];
    assert!(full.iter().all(|b| b.txdata.len() == width + 1));
    let secs = replay(full, &d);
    rows.push((
        format!("{width}-transaction blocks validated and connected (kernel + index)"),
        format!(
            "{:.1} blocks/s ({:.0} tx/s)",
            full.len() as f64 / secs,
            (full.len() * width) as f64 / secs
        ),
    ));

    println!("| benchmark | result |\n|---|---|");
    for (name, value) in rows {
        println!("| {name} | {value} |");
    }
}
