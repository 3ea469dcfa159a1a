//! Differential test: moip's Electrum server and ElectrumX 2.0 index the same embedded chain —
//! thousands of transactions, address reuse, RBF replacements, unconfirmed chains and
//! reorganisations — and must give identical answers for headers, checkpoint proofs, histories,
//! status hashes, balances, unspent outputs, mempools, Merkle proofs and id_from_pos.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, OutPoint, Sequence, Transaction, TxOut};
use common::{scripthash, wait_until, ElectrumClient, ElectrumX, NodeProcess, BURN_ADDRESS};
use moip_testkit::{sign, Key, Kind};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(180);

/// A deterministic pseudo-random sequence (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The coins the test owns, with the key of each.
struct Wallet {
    keys: Vec<Key>,
    coins: BTreeMap<OutPoint, (TxOut, usize)>,
}

impl Wallet {
    fn new(n: usize) -> Wallet {
        let keys = (0..n)
            .map(|i| {
                let mut bytes = [7u8; 32];
                bytes[0] = i as u8;
                bytes[1] = (i >> 8) as u8;
                Key::from_bytes(bytes, if i % 3 == 0 { Kind::P2tr } else { Kind::P2wpkh })
            })
            .collect();
        Wallet {
            keys,
            coins: BTreeMap::new(),
        }
    }

    /// Spends `inputs` random coins to `outputs` random keys (Zipf-ish reuse: low keys are
    /// popular).
    fn pay(
        &mut self,
        rng: &mut Rng,
        inputs: usize,
        outputs: usize,
        fee: u64,
    ) -> Option<Transaction> {
        if self.coins.len() < inputs {
            return None;
        }
        let mut chosen = Vec::new();
        while chosen.len() < inputs {
            let at = rng.below(self.coins.len());
            let op = *self.coins.keys().nth(at)?;
            if chosen.iter().all(|o| *o != op) {
                chosen.push(op);
            }
        }
        self.pay_from(rng, &chosen, outputs, fee)
    }

    /// Spends the given coins to `outputs` random keys.
    fn pay_from(
        &mut self,
        rng: &mut Rng,
        coins: &[OutPoint],
        outputs: usize,
        fee: u64,
    ) -> Option<Transaction> {
        let chosen: Vec<(OutPoint, TxOut, usize)> = coins
            .iter()
            .map(|o| self.coins.get(o).map(|(t, k)| (*o, t.clone(), *k)))
            .collect::<Option<_>>()?;
        let total: u64 = chosen.iter().map(|(_, t, _)| t.value.to_sat()).sum();
        let each = total.checked_sub(fee)? / outputs as u64;
        if each < 1_000 {
            return None;
        }
        let targets: Vec<usize> = (0..outputs)
            .map(|_| rng.below(self.keys.len()).min(rng.below(self.keys.len())))
            .collect();
        let outs: Vec<TxOut> = targets
            .iter()
            .map(|t| TxOut {
                value: Amount::from_sat(each),
                script_pubkey: self.keys[*t].script(),
            })
            .collect();
        let ins: Vec<(OutPoint, TxOut, &Key)> = chosen
            .iter()
            .map(|(o, t, k)| (*o, t.clone(), &self.keys[*k]))
            .collect();
        let tx = sign(&ins, outs, Sequence::ENABLE_RBF_NO_LOCKTIME);
        for (o, _, _) in &chosen {
            self.coins.remove(o);
        }
        let txid = tx.compute_txid();
        for (vout, (out, k)) in tx.output.iter().zip(&targets).enumerate() {
            self.coins.insert(
                OutPoint {
                    txid,
                    vout: vout as u32,
                },
                (out.clone(), *k),
            );
        }
        Some(tx)
    }

    /// Forgets the outputs of `tx` and gives back its inputs (after an RBF replacement).
    fn unpay(&mut self, tx: &Transaction, inputs: &[(OutPoint, TxOut, usize)]) {
        let txid = tx.compute_txid();
        for vout in 0..tx.output.len() as u32 {
            self.coins.remove(&OutPoint { txid, vout });
        }
        for (o, t, k) in inputs {
            self.coins.insert(*o, (t.clone(), *k));
        }
    }
}

fn broadcast(node: &NodeProcess, tx: &Transaction) {
    node.call("sendrawtransaction", json!([serialize_hex(tx)]));
}

fn mine(node: &NodeProcess, n: u32) -> Vec<String> {
    node.call("generatetoaddress", json!([n, BURN_ADDRESS]))
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| h.as_str().expect("hash").to_owned())
        .collect()
}

/// Asks both servers the same question and requires the same answer.
fn same(
    ours: &mut ElectrumClient,
    theirs: &mut ElectrumClient,
    method: &str,
    params: Value,
) -> Value {
    let a = ours.call(method, params.clone());
    let b = theirs.call(method, params.clone());
    assert_eq!(a, b, "{method} {params}: moip vs ElectrumX");
    a.unwrap_or(Value::Null)
}

/// The same question for many parameter lists, in one batch to each server. (ElectrumX pads
/// small TCP replies and holds them up to a second; batches keep the test quick.)
fn same_batch(
    ours: &mut ElectrumClient,
    theirs: &mut ElectrumClient,
    method: &str,
    params: &[Value],
) -> Vec<Value> {
    let a = ours.batch(method, params);
    let b = theirs.batch(method, params);
    for ((p, x), y) in params.iter().zip(&a).zip(&b) {
        assert_eq!(x, y, "{method} {p}: moip vs ElectrumX");
    }
    a.into_iter().map(|r| r.unwrap_or(Value::Null)).collect()
}

fn sorted_unspent(v: Result<Value, Value>) -> Vec<(i64, String, i64, i64)> {
    let mut list: Vec<(i64, String, i64, i64)> = v
        .expect("listunspent")
        .as_array()
        .expect("list")
        .iter()
        .map(|u| {
            (
                u["height"].as_i64().expect("h"),
                u["tx_hash"].as_str().expect("t").to_owned(),
                u["tx_pos"].as_i64().expect("p"),
                u["value"].as_i64().expect("v"),
            )
        })
        .collect();
    list.sort();
    list
}

/// Waits until both servers report the node's tip and the same view of every script, then
/// compares every method.
fn compare_all(
    node: &NodeProcess,
    wallet: &Wallet,
    ours: &mut ElectrumClient,
    theirs: &mut ElectrumClient,
) {
    let tip_height = node.height();
    let tip_hash = node.call("getbestblockhash", json!([]));
    for (name, client) in [("moip", &mut *ours), ("ElectrumX", &mut *theirs)] {
        wait_until(WAIT, &format!("{name} to reach the tip"), || {
            let h = client
                .call("blockchain.headers.subscribe", json!([]))
                .ok()?;
            let header = client
                .call("blockchain.block.header", json!([tip_height]))
                .ok()?;
            (h["height"] == json!(tip_height) && header_hash(&header) == tip_hash).then_some(())
        });
    }
    eprintln!("both servers at height {tip_height}");
    let scripts: Vec<Value> = wallet
        .keys
        .iter()
        .map(|k| json!([scripthash(&k.script())]))
        .collect();
    // Mempools converge asynchronously (ElectrumX polls): wait until the histories agree.
    wait_until(WAIT, "both mempool views to agree", || {
        (ours.batch("blockchain.scripthash.get_history", &scripts)
            == theirs.batch("blockchain.scripthash.get_history", &scripts))
        .then_some(())
    });
    eprintln!("mempool views agree");
    let histories = same_batch(ours, theirs, "blockchain.scripthash.get_history", &scripts);
    same_batch(ours, theirs, "blockchain.scripthash.get_mempool", &scripts);
    same_batch(ours, theirs, "blockchain.scripthash.get_balance", &scripts);
    let statuses = same_batch(ours, theirs, "blockchain.scripthash.subscribe", &scripts);
    let ours_unspent = ours.batch("blockchain.scripthash.listunspent", &scripts);
    let theirs_unspent = theirs.batch("blockchain.scripthash.listunspent", &scripts);
    for ((sh, a), b) in scripts.iter().zip(ours_unspent).zip(theirs_unspent) {
        assert_eq!(sorted_unspent(a), sorted_unspent(b), "listunspent {sh}");
    }
    let mut txs_seen = Vec::new();
    for (history, status) in histories.iter().zip(&statuses) {
        assert_eq!(
            status.is_null(),
            history.as_array().is_none_or(Vec::is_empty),
            "null status iff no history"
        );
        for entry in history.as_array().into_iter().flatten() {
            if entry["height"].as_i64().unwrap_or(0) > 0 {
                txs_seen.push((entry["tx_hash"].clone(), entry["height"].clone()));
            }
        }
    }
    txs_seen.sort_by_key(|(t, _)| t.to_string());
    txs_seen.dedup();
    let merkle: Vec<Value> = txs_seen
        .iter()
        .step_by(3)
        .map(|(t, h)| json!([t, h]))
        .collect();
    same_batch(ours, theirs, "blockchain.transaction.get_merkle", &merkle);
    let txids: Vec<Value> = txs_seen
        .iter()
        .step_by(3)
        .map(|(t, _)| json!([t]))
        .collect();
    same_batch(ours, theirs, "blockchain.transaction.get", &txids);
    let heights: Vec<Value> = (1..=tip_height).map(|h| json!([h])).collect();
    same_batch(ours, theirs, "blockchain.block.header", &heights);
    let proofs: Vec<Value> = (1..=tip_height)
        .step_by(5)
        .map(|h| json!([h, tip_height]))
        .collect();
    same_batch(ours, theirs, "blockchain.block.header", &proofs);
    let positions: Vec<Value> = (1..=tip_height).map(|h| json!([h, 0, true])).collect();
    same_batch(
        ours,
        theirs,
        "blockchain.transaction.id_from_pos",
        &positions,
    );
    same(ours, theirs, "blockchain.block.headers", json!([0, 2016]));
    same(
        ours,
        theirs,
        "blockchain.block.headers",
        json!([3, 20, tip_height]),
    );
    same(
        ours,
        theirs,
        "blockchain.transaction.id_from_pos",
        json!([tip_height, 1, true]),
    );
}

fn header_hash(raw: &Value) -> Value {
    use bitcoin::hex::FromHex;
    let bytes = Vec::<u8>::from_hex(raw.as_str().unwrap_or("")).unwrap_or_default();
    match bitcoin::consensus::deserialize::<bitcoin::block::Header>(&bytes) {
        Ok(h) => json!(h.block_hash().to_string()),
        Err(_) => Value::Null,
    }
}

#[test]
fn moip_and_electrumx_give_identical_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args: Vec<String> = [
        "electrum",
        "--rpc-port",
        "0",
        "--tcp-port",
        "0",
        "--tls-port",
        "0",
        "--ws-port",
        "0",
        "--wss-port",
        "0",
        // A test of answers, not of limits: its one client asks thousands of questions.
        "--exempt",
        "127.0.0.1",
        "--data-dir",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([dir.path().display().to_string()])
    .collect();
    let (node, found) = NodeProcess::spawn(&args, dir.path(), &["Electrum TCP: "]);
    let ours_addr: std::net::SocketAddr = found[0].parse().expect("address");
    let mut rng = Rng(0x5eed_1234_abcd);
    let mut wallet = Wallet::new(120);

    // Coinbases to the wallet, matured, then fanned out into many coins.
    for i in 0..30usize {
        let address = wallet.keys[i].address().to_string();
        let hash = node.call("generatetoaddress", json!([1, address]))[0].clone();
        let block = node.call("getblock", json!([hash, 2]));
        let cb = &block["tx"][0];
        let txid: bitcoin::Txid = cb["txid"].as_str().expect("txid").parse().expect("txid");
        let value =
            Amount::from_btc(cb["vout"][0]["value"].as_f64().expect("value")).expect("amount");
        wallet.coins.insert(
            OutPoint { txid, vout: 0 },
            (
                TxOut {
                    value,
                    script_pubkey: wallet.keys[i].script(),
                },
                i,
            ),
        );
    }
    mine(&node, 100);
    let coinbases: Vec<OutPoint> = wallet.coins.keys().copied().collect();
    for coinbase in coinbases {
        let tx = wallet
            .pay_from(&mut rng, &[coinbase], 40, 10_000)
            .expect("fan-out");
        broadcast(&node, &tx);
    }
    mine(&node, 1);
    // Rounds of ordinary payments, one block each.
    for _ in 0..12 {
        for _ in 0..180 {
            let inputs = 1 + rng.below(2);
            let outputs = 1 + rng.below(3);
            let fee = 500 + rng.below(4_000) as u64;
            if let Some(tx) = wallet.pay(&mut rng, inputs, outputs, fee) {
                broadcast(&node, &tx);
            }
        }
        mine(&node, 1);
    }

    eprintln!("chain built: height {}", node.height());
    let ex = ElectrumX::start(&node);
    let mut theirs = ex.connect();
    let mut ours = ElectrumClient::connect(ours_addr, "1.6", WAIT);
    let live = |node: &NodeProcess, wallet: &mut Wallet, rng: &mut Rng| {
        // RBF: send, then replace half of them with a higher fee paying elsewhere.
        for _ in 0..20 {
            let before: BTreeMap<_, _> = wallet.coins.clone();
            let Some(original) = wallet.pay(rng, 1, 2, 1_000) else {
                continue;
            };
            broadcast(node, &original);
            if rng.below(2) == 0 {
                let spent: Vec<(OutPoint, TxOut, usize)> = original
                    .input
                    .iter()
                    .map(|i| {
                        (
                            i.previous_output,
                            before[&i.previous_output].0.clone(),
                            before[&i.previous_output].1,
                        )
                    })
                    .collect();
                wallet.unpay(&original, &spent);
                let ins: Vec<(OutPoint, TxOut, &Key)> = spent
                    .iter()
                    .map(|(o, t, k)| (*o, t.clone(), &wallet.keys[*k]))
                    .collect();
                let total: u64 = spent.iter().map(|(_, t, _)| t.value.to_sat()).sum();
                let to = rng.below(wallet.keys.len());
                let replacement = sign(
                    &ins,
                    vec![TxOut {
                        value: Amount::from_sat(total - 5_000),
                        script_pubkey: wallet.keys[to].script(),
                    }],
                    Sequence::ENABLE_RBF_NO_LOCKTIME,
                );
                for (o, _, _) in &spent {
                    wallet.coins.remove(o);
                }
                wallet.coins.insert(
                    OutPoint {
                        txid: replacement.compute_txid(),
                        vout: 0,
                    },
                    (replacement.output[0].clone(), to),
                );
                broadcast(node, &replacement);
            }
        }
        // Unconfirmed chains: parent -> child -> grandchild.
        for _ in 0..5 {
            let Some(parent) = wallet.pay(rng, 1, 1, 800) else {
                continue;
            };
            broadcast(node, &parent);
            let mut prev = parent;
            for _ in 0..3 {
                let op = OutPoint {
                    txid: prev.compute_txid(),
                    vout: 0,
                };
                let (txout, k) = wallet.coins.get(&op).cloned().expect("just paid");
                let to = rng.below(wallet.keys.len());
                let next = sign(
                    &[(op, txout.clone(), &wallet.keys[k])],
                    vec![TxOut {
                        value: txout.value - Amount::from_sat(700),
                        script_pubkey: wallet.keys[to].script(),
                    }],
                    Sequence::ENABLE_RBF_NO_LOCKTIME,
                );
                wallet.coins.remove(&op);
                wallet.coins.insert(
                    OutPoint {
                        txid: next.compute_txid(),
                        vout: 0,
                    },
                    (next.output[0].clone(), to),
                );
                broadcast(node, &next);
                prev = next;
            }
        }
    };
    live(&node, &mut wallet, &mut rng);
    compare_all(&node, &wallet, &mut ours, &mut theirs);

    // A reorganisation two blocks deep, with new blocks on top, then a live mempool again.
    let tip = node.height();
    let fork = node.call("getblockhash", json!([tip - 1]));
    node.call("invalidateblock", json!([fork]));
    mine(&node, 3);
    live(&node, &mut wallet, &mut rng);
    compare_all(&node, &wallet, &mut ours, &mut theirs);
    node.stop();
}
