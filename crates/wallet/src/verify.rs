//! Trust, but verify: an Electrum client wrapper that checks what the server says.
//!
//! BDK's Electrum sync asks the server for headers, merkle proofs and transactions. A server
//! that lies could claim a payment confirmed that never was, or feed headers of a chain that
//! does not exist. [`VerifyingClient`] sits between BDK and the server and keeps its own chain of
//! headers, checked from the genesis block: each header must link to the one before and carry
//! the proof of work its target claims (within the network's limit). Every header the server
//! hands BDK must be one of those, every merkle proof must lead into one of them, and every
//! transaction must hash to the id it was asked for. The first failure is recorded as a
//! [`ServerLie`] and the sync fails, so nothing from a lying server reaches the wallet.
//!
//! What is not checked: difficulty retargeting (a server with enough hash power for a few
//! headers at minimum difficulty could forge them on test networks), and omission — a server
//! can always hide a payment; that is what the trust level tells the user.

use std::borrow::Borrow;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::{BlockHash, Network, Script, Transaction, Txid};
use electrum_client::{
    Batch, ElectrumApi, Error, GetBalanceRes, GetHeadersRes, GetHistoryRes, GetMerkleRes,
    ListUnspentRes, Param, RawHeaderNotification, ServerFeaturesRes,
};

/// Headers are fetched in pages of this many (the protocol's usual chunk).
const PAGE: usize = 2016;

/// How a server was caught lying.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerLie {
    #[error("its headers do not chain at height {height}")]
    HeadersDoNotChain { height: u32 },
    #[error("the header at height {height} lacks the proof of work it claims")]
    BadProofOfWork { height: u32 },
    #[error("its header at height {height} is not on the chain of headers it served")]
    WrongHeader { height: u32 },
    #[error("its chain does not start at the {0} genesis block")]
    WrongGenesis(Network),
    #[error("its merkle proof for {txid} does not lead to the block at height {height}")]
    BadMerkleProof { txid: Txid, height: u32 },
    #[error("it sent a different transaction when asked for {0}")]
    WrongTransaction(Txid),
    #[error("it claims a tip at height {height} but serves no header there")]
    MissingHeaders { height: u32 },
}

/// A chain of headers from genesis, each checked against the one before.
pub struct HeaderChain {
    network: Network,
    headers: Vec<Header>,
    /// Where the chain is kept between runs (80 bytes per header); `None` keeps it in memory.
    file: Option<PathBuf>,
    /// How many headers of `headers` are already in the file.
    saved: usize,
}

impl HeaderChain {
    /// A chain holding the network's genesis header, extended from `file` if it has headers
    /// that still verify (a damaged file is ignored from the first bad header on).
    pub fn load(network: Network, file: Option<PathBuf>) -> HeaderChain {
        let genesis = bitcoin::constants::genesis_block(network).header;
        let mut chain = HeaderChain {
            network,
            headers: vec![genesis],
            file,
            saved: 0,
        };
        if let Some(bytes) = chain.file.as_ref().and_then(|f| fs::read(f).ok()) {
            let mut stored = bytes.chunks_exact(80).map(deserialize::<Header>);
            if matches!(stored.next(), Some(Ok(h)) if h == genesis) {
                for header in stored {
                    let Ok(header) = header else { break };
                    if chain.check_next(&header).is_err() {
                        break;
                    }
                    chain.headers.push(header);
                }
                chain.saved = chain.headers.len();
            }
        }
        chain
    }

    /// The height of the last header.
    pub fn height(&self) -> u32 {
        (self.headers.len() - 1) as u32
    }

    pub fn get(&self, height: u32) -> Option<&Header> {
        self.headers.get(height as usize)
    }

    pub fn tip_hash(&self) -> BlockHash {
        self.headers[self.headers.len() - 1].block_hash()
    }

    /// Checks that `header` may follow the current tip.
    fn check_next(&self, header: &Header) -> Result<(), ServerLie> {
        let height = self.headers.len() as u32;
        if header.prev_blockhash != self.tip_hash() {
            return Err(ServerLie::HeadersDoNotChain { height });
        }
        check_pow(self.network, header, height)
    }

    /// Replaces everything above `fork` (a height both chains share) with `headers`.
    fn extend_from(&mut self, fork: u32, headers: &[Header]) -> Result<(), ServerLie> {
        let keep = fork as usize + 1;
        let mut candidate = HeaderChain {
            network: self.network,
            headers: self.headers[..keep].to_vec(),
            file: None,
            saved: 0,
        };
        for header in headers {
            candidate.check_next(header)?;
            candidate.headers.push(*header);
        }
        self.headers = candidate.headers;
        self.saved = self.saved.min(keep);
        Ok(())
    }

    /// Writes the headers not yet on disk (rewriting from a reorg's fork point).
    pub fn save(&mut self) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut file = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        file.set_len((self.saved * 80) as u64)?;
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start((self.saved * 80) as u64))?;
        let mut bytes = Vec::with_capacity((self.headers.len() - self.saved) * 80);
        for header in &self.headers[self.saved..] {
            bytes.extend_from_slice(&serialize(header));
        }
        file.write_all(&bytes)?;
        file.sync_data()?;
        self.saved = self.headers.len();
        Ok(())
    }
}

/// The header's hash meets its own target, and that target is within the network's limit.
fn check_pow(network: Network, header: &Header, height: u32) -> Result<(), ServerLie> {
    let target = header.target();
    let limit = bitcoin::params::Params::new(network).max_attainable_target;
    if target > limit || header.validate_pow(target).is_err() {
        return Err(ServerLie::BadProofOfWork { height });
    }
    Ok(())
}

/// An [`ElectrumApi`] that verifies the server's answers against its own header chain.
pub struct VerifyingClient<E> {
    inner: E,
    chain: Mutex<HeaderChain>,
    lie: Mutex<Option<ServerLie>>,
}

impl<E: ElectrumApi> VerifyingClient<E> {
    pub fn new(inner: E, chain: HeaderChain) -> VerifyingClient<E> {
        VerifyingClient {
            inner,
            chain: Mutex::new(chain),
            lie: Mutex::new(None),
        }
    }

    /// The first lie caught, if any.
    pub fn lie(&self) -> Option<ServerLie> {
        self.lie.lock().ok().and_then(|l| l.clone())
    }

    /// Saves the verified headers to their file.
    pub fn save_headers(&self) -> std::io::Result<()> {
        match self.chain.lock() {
            Ok(mut chain) => chain.save(),
            Err(_) => Ok(()),
        }
    }

    fn caught(&self, lie: ServerLie) -> Error {
        let message = lie.to_string();
        if let Ok(mut slot) = self.lie.lock() {
            slot.get_or_insert(lie);
        }
        Error::Message(format!("server lied: {message}"))
    }

    fn chain(&self) -> Result<std::sync::MutexGuard<'_, HeaderChain>, Error> {
        self.chain
            .lock()
            .map_err(|_| Error::Message("header chain poisoned".into()))
    }

    /// Brings the verified chain to the server's tip `tip` (header at `tip_height`), following
    /// a reorg back to the last header both chains share.
    fn follow(&self, tip_height: u32, tip: &Header) -> Result<(), Error> {
        let mut chain = self.chain()?;
        if chain.get(tip_height) == Some(tip) {
            return Ok(());
        }
        // Look for the fork point: step back a page at a time until the server's header at
        // `start - 1` is ours.
        let mut start = chain.height().min(tip_height) + 1;
        loop {
            let fork = start - 1;
            let theirs = self.fetch(fork, 1)?;
            let Some(first) = theirs.first() else {
                return Err(self.caught(ServerLie::MissingHeaders { height: fork }));
            };
            if chain.get(fork) == Some(first) {
                break;
            }
            if fork == 0 {
                return Err(self.caught(ServerLie::WrongGenesis(chain.network)));
            }
            start = start.saturating_sub(PAGE as u32).max(1);
        }
        let mut fork = start - 1;
        let mut fetched = Vec::new();
        while fork + (fetched.len() as u32) < tip_height {
            let from = fork + fetched.len() as u32 + 1;
            let count = (tip_height - from + 1).min(PAGE as u32) as usize;
            let page = self.fetch(from, count)?;
            if page.is_empty() {
                return Err(self.caught(ServerLie::MissingHeaders { height: from }));
            }
            fetched.extend(page);
            // Keep memory bounded on long chains: apply each full page as it comes.
            if fetched.len() >= 16 * PAGE {
                chain
                    .extend_from(fork, &fetched)
                    .map_err(|lie| self.caught(lie))?;
                fork += fetched.len() as u32;
                fetched.clear();
            }
        }
        chain
            .extend_from(fork, &fetched)
            .map_err(|lie| self.caught(lie))?;
        if chain.get(tip_height) != Some(tip) {
            return Err(self.caught(ServerLie::WrongHeader { height: tip_height }));
        }
        Ok(())
    }

    fn fetch(&self, from: u32, count: usize) -> Result<Vec<Header>, Error> {
        let res = self.inner.block_headers(from as usize, count)?;
        Ok(res.headers)
    }

    /// Makes sure `height` is in the verified chain, then checks `header` is the one there.
    fn check_header(&self, height: u32, header: &Header) -> Result<(), Error> {
        if self.chain()?.height() < height {
            let tip = self.inner.block_headers_subscribe()?;
            self.follow(tip.height as u32, &tip.header)?;
        }
        let chain = self.chain()?;
        if chain.get(height) != Some(header) {
            return Err(self.caught(ServerLie::WrongHeader { height }));
        }
        Ok(())
    }

    fn check_merkle(&self, txid: &Txid, height: usize, proof: &GetMerkleRes) -> Result<(), Error> {
        let height = height as u32;
        if self.chain()?.height() < height {
            let tip = self.inner.block_headers_subscribe()?;
            self.follow(tip.height as u32, &tip.header)?;
        }
        let root = self.chain()?.get(height).map(|h| h.merkle_root);
        let valid = root
            .is_some_and(|root| electrum_client::utils::validate_merkle_proof(txid, &root, proof));
        if !valid || proof.block_height != height as usize {
            return Err(self.caught(ServerLie::BadMerkleProof {
                txid: *txid,
                height,
            }));
        }
        Ok(())
    }

    fn check_tx(&self, txid: &Txid, raw: &[u8]) -> Result<(), Error> {
        match deserialize::<Transaction>(raw) {
            Ok(tx) if tx.compute_txid() == *txid => Ok(()),
            _ => Err(self.caught(ServerLie::WrongTransaction(*txid))),
        }
    }
}

fn header_from_raw(raw: &[u8]) -> Result<Header, Error> {
    deserialize(raw).map_err(|e| Error::Message(format!("bad header from the server: {e}")))
}

impl<E: ElectrumApi> ElectrumApi for VerifyingClient<E> {
    fn raw_call(
        &self,
        method_name: &str,
        params: impl IntoIterator<Item = Param>,
    ) -> Result<serde_json::Value, Error> {
        self.inner.raw_call(method_name, params)
    }

    fn batch_call(&self, batch: &Batch) -> Result<Vec<serde_json::Value>, Error> {
        self.inner.batch_call(batch)
    }

    fn block_headers_subscribe_raw(&self) -> Result<RawHeaderNotification, Error> {
        let tip = self.inner.block_headers_subscribe_raw()?;
        let header = header_from_raw(&tip.header)?;
        self.follow(tip.height as u32, &header)?;
        Ok(tip)
    }

    fn block_headers_pop_raw(&self) -> Result<Option<RawHeaderNotification>, Error> {
        let popped = self.inner.block_headers_pop_raw()?;
        if let Some(tip) = &popped {
            let header = header_from_raw(&tip.header)?;
            self.follow(tip.height as u32, &header)?;
        }
        Ok(popped)
    }

    fn block_header_raw(&self, height: usize) -> Result<Vec<u8>, Error> {
        let raw = self.inner.block_header_raw(height)?;
        self.check_header(height as u32, &header_from_raw(&raw)?)?;
        Ok(raw)
    }

    fn block_headers(&self, start_height: usize, count: usize) -> Result<GetHeadersRes, Error> {
        let res = self.inner.block_headers(start_height, count)?;
        for (i, header) in res.headers.iter().enumerate() {
            self.check_header((start_height + i) as u32, header)?;
        }
        Ok(res)
    }

    fn estimate_fee(&self, number: usize) -> Result<f64, Error> {
        self.inner.estimate_fee(number)
    }

    fn relay_fee(&self) -> Result<f64, Error> {
        self.inner.relay_fee()
    }

    fn script_subscribe(
        &self,
        script: &Script,
    ) -> Result<Option<electrum_client::ScriptStatus>, Error> {
        self.inner.script_subscribe(script)
    }

    fn batch_script_subscribe<'s, I>(
        &self,
        scripts: I,
    ) -> Result<Vec<Option<electrum_client::ScriptStatus>>, Error>
    where
        I: IntoIterator + Clone,
        I::Item: std::borrow::Borrow<&'s Script>,
    {
        self.inner.batch_script_subscribe(scripts)
    }

    fn script_unsubscribe(&self, script: &Script) -> Result<bool, Error> {
        self.inner.script_unsubscribe(script)
    }

    fn script_pop(&self, script: &Script) -> Result<Option<electrum_client::ScriptStatus>, Error> {
        self.inner.script_pop(script)
    }

    fn script_get_balance(&self, script: &Script) -> Result<GetBalanceRes, Error> {
        self.inner.script_get_balance(script)
    }

    fn batch_script_get_balance<'s, I>(&self, scripts: I) -> Result<Vec<GetBalanceRes>, Error>
    where
        I: IntoIterator + Clone,
        I::Item: std::borrow::Borrow<&'s Script>,
    {
        self.inner.batch_script_get_balance(scripts)
    }

    fn script_get_history(&self, script: &Script) -> Result<Vec<GetHistoryRes>, Error> {
        self.inner.script_get_history(script)
    }

    fn batch_script_get_history<'s, I>(&self, scripts: I) -> Result<Vec<Vec<GetHistoryRes>>, Error>
    where
        I: IntoIterator + Clone,
        I::Item: std::borrow::Borrow<&'s Script>,
    {
        self.inner.batch_script_get_history(scripts)
    }

    fn script_list_unspent(&self, script: &Script) -> Result<Vec<ListUnspentRes>, Error> {
        self.inner.script_list_unspent(script)
    }

    fn batch_script_list_unspent<'s, I>(
        &self,
        scripts: I,
    ) -> Result<Vec<Vec<ListUnspentRes>>, Error>
    where
        I: IntoIterator + Clone,
        I::Item: std::borrow::Borrow<&'s Script>,
    {
        self.inner.batch_script_list_unspent(scripts)
    }

    fn transaction_get_raw(&self, txid: &Txid) -> Result<Vec<u8>, Error> {
        let raw = self.inner.transaction_get_raw(txid)?;
        self.check_tx(txid, &raw)?;
        Ok(raw)
    }

    fn batch_transaction_get_raw<'t, I>(&self, txids: I) -> Result<Vec<Vec<u8>>, Error>
    where
        I: IntoIterator + Clone,
        I::Item: std::borrow::Borrow<&'t Txid>,
    {
        let wanted: Vec<Txid> = txids.clone().into_iter().map(|t| **t.borrow()).collect();
        let raws = self.inner.batch_transaction_get_raw(txids)?;
        for (txid, raw) in wanted.iter().zip(&raws) {
            self.check_tx(txid, raw)?;
        }
        Ok(raws)
    }

    fn batch_block_header_raw<I>(&self, heights: I) -> Result<Vec<Vec<u8>>, Error>
    where
        I: IntoIterator + Clone,
        I::Item: std::borrow::Borrow<u32>,
    {
        let wanted: Vec<u32> = heights.clone().into_iter().map(|h| *h.borrow()).collect();
        let raws = self.inner.batch_block_header_raw(heights)?;
        for (height, raw) in wanted.iter().zip(&raws) {
            self.check_header(*height, &header_from_raw(raw)?)?;
        }
        Ok(raws)
    }

    fn batch_estimate_fee<I>(&self, numbers: I) -> Result<Vec<f64>, Error>
    where
        I: IntoIterator + Clone,
        I::Item: std::borrow::Borrow<usize>,
    {
        self.inner.batch_estimate_fee(numbers)
    }

    fn transaction_broadcast_raw(&self, raw_tx: &[u8]) -> Result<Txid, Error> {
        self.inner.transaction_broadcast_raw(raw_tx)
    }

    fn transaction_get_merkle(&self, txid: &Txid, height: usize) -> Result<GetMerkleRes, Error> {
        let proof = self.inner.transaction_get_merkle(txid, height)?;
        self.check_merkle(txid, height, &proof)?;
        Ok(proof)
    }

    fn batch_transaction_get_merkle<I>(
        &self,
        txids_and_heights: I,
    ) -> Result<Vec<GetMerkleRes>, Error>
    where
        I: IntoIterator + Clone,
        I::Item: std::borrow::Borrow<(Txid, usize)>,
    {
        let wanted: Vec<(Txid, usize)> = txids_and_heights
            .clone()
            .into_iter()
            .map(|p| *p.borrow())
            .collect();
        let proofs = self.inner.batch_transaction_get_merkle(txids_and_heights)?;
        for ((txid, height), proof) in wanted.iter().zip(&proofs) {
            self.check_merkle(txid, *height, proof)?;
        }
        Ok(proofs)
    }

    fn txid_from_pos(&self, height: usize, tx_pos: usize) -> Result<Txid, Error> {
        self.inner.txid_from_pos(height, tx_pos)
    }

    fn txid_from_pos_with_merkle(
        &self,
        height: usize,
        tx_pos: usize,
    ) -> Result<electrum_client::TxidFromPosRes, Error> {
        self.inner.txid_from_pos_with_merkle(height, tx_pos)
    }

    fn server_features(&self) -> Result<ServerFeaturesRes, Error> {
        self.inner.server_features()
    }

    fn ping(&self) -> Result<(), Error> {
        self.inner.ping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::block::Version;
    use bitcoin::hashes::Hash;
    use bitcoin::{CompactTarget, TxMerkleNode};

    /// Mines a regtest header on `prev` (regtest's target is met within a few tries).
    fn mine(prev: &Header, time: u32) -> Header {
        let mut header = Header {
            version: Version::TWO,
            prev_blockhash: prev.block_hash(),
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: prev.bits,
            nonce: 0,
        };
        while header.validate_pow(header.target()).is_err() {
            header.nonce += 1;
        }
        header
    }

    #[test]
    fn chain_accepts_linked_mined_headers_and_rejects_the_rest() {
        let mut chain = HeaderChain::load(Network::Regtest, None);
        let genesis = *chain.get(0).expect("genesis");
        let a = mine(&genesis, 1);
        let b = mine(&a, 2);
        chain.extend_from(0, &[a, b]).expect("valid");
        assert_eq!(chain.height(), 2);

        let unlinked = mine(&genesis, 3);
        assert_eq!(
            chain.extend_from(2, &[unlinked]),
            Err(ServerLie::HeadersDoNotChain { height: 3 })
        );
        let mut weak = mine(&b, 4);
        weak.bits = CompactTarget::from_consensus(0x2100ffff);
        assert!(matches!(
            chain.extend_from(2, &[weak]),
            Err(ServerLie::BadProofOfWork { height: 3 })
        ));
        // A reorg replaces everything above the fork.
        let b2 = mine(&a, 5);
        chain.extend_from(1, &[b2]).expect("reorg");
        assert_eq!(chain.get(2), Some(&b2));
    }

    #[test]
    fn chain_file_round_trips_and_stops_at_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("headers");
        let mut chain = HeaderChain::load(Network::Regtest, Some(path.clone()));
        let genesis = *chain.get(0).expect("genesis");
        let a = mine(&genesis, 1);
        let b = mine(&a, 2);
        chain.extend_from(0, &[a, b]).expect("valid");
        chain.save().expect("save");
        assert_eq!(
            HeaderChain::load(Network::Regtest, Some(path.clone())).height(),
            2
        );
        let mut bytes = fs::read(&path).expect("read");
        bytes[80 * 2 + 5] ^= 1;
        fs::write(&path, bytes).expect("write");
        assert_eq!(HeaderChain::load(Network::Regtest, Some(path)).height(), 1);
    }
}
