//! The fuzz targets of moip, as functions: `fuzz_targets/<target>.rs` hands libFuzzer's input to
//! `moip_fuzz::<target>`, and `tests/replay.rs` runs every committed input (`corpus/<target>/`,
//! `regressions/<target>/`) through the same function in `cargo test`. Also the fixtures the
//! targets share: a small chain to index, a community to act in.

mod targets;

pub use targets::api_bodies::api_bodies;
pub use targets::chain_rpc::chain_rpc;
pub use targets::electrum_request::electrum_request;
pub use targets::moneysocket_secure::moneysocket_secure;
pub use targets::moneysocket_v0::moneysocket_v0;
pub use targets::moneysocket_v1::moneysocket_v1;
pub use targets::mssmt_proof::mssmt_proof;
pub use targets::nwc_request::nwc_request;
pub use targets::work_event::work_event;

pub mod electrum {
    //! A chain source serving a fixed regtest chain of a few blocks (coinbases paying three
    //! scripts, and spends of earlier coinbases), and an Electrum index synced over it.

    use std::sync::Arc;

    use bitcoin::absolute::LockTime;
    use bitcoin::block::{Header, Version};
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version as TxVersion;
    use bitcoin::{
        Amount, Block, BlockHash, CompactTarget, FeeRate, Network, OutPoint, ScriptBuf, Sequence,
        Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness,
    };
    use moip_chain::{
        BlockId, ChainError, ChainEvent, ChainSource, FeeEstimate, FeeMode, HeaderEntry, LocatedTx,
        MempoolEntry, PackageOutcome, SpentOutput, TxLocation,
    };
    use moip_electrum::index::{Index, Syncer};
    use moip_electrum::query::Query;
    use tokio::sync::broadcast;

    /// Blocks above genesis.
    pub const HEIGHT: u32 = 24;

    /// The scripts the chain pays.
    pub fn scripts() -> Vec<ScriptBuf> {
        (0u8..3)
            .map(|i| ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([i + 1; 20])))
            .collect()
    }

    /// A fixed chain.
    pub struct FixedChain {
        blocks: Vec<Block>,
        events: broadcast::Sender<ChainEvent>,
    }

    impl FixedChain {
        pub fn new() -> FixedChain {
            let scripts = scripts();
            let mut blocks = vec![bitcoin::constants::genesis_block(Network::Regtest)];
            for height in 1..=HEIGHT {
                let prev = blocks
                    .last()
                    .map(Block::block_hash)
                    .unwrap_or(BlockHash::all_zeros());
                let coinbase = Transaction {
                    version: TxVersion::TWO,
                    lock_time: LockTime::ZERO,
                    input: vec![TxIn {
                        previous_output: OutPoint::null(),
                        script_sig: ScriptBuf::from_bytes(
                            [&[0x04][..], &height.to_le_bytes()[..]].concat(),
                        ),
                        sequence: Sequence::MAX,
                        witness: Witness::new(),
                    }],
                    output: vec![TxOut {
                        value: Amount::from_sat(5_000_000_000),
                        script_pubkey: scripts[height as usize % 3].clone(),
                    }],
                };
                let mut txdata = vec![coinbase];
                if height >= 2 {
                    // Spend the previous block's coinbase to the next script.
                    let spent = blocks[height as usize - 1].txdata[0].compute_txid();
                    txdata.push(Transaction {
                        version: TxVersion::TWO,
                        lock_time: LockTime::ZERO,
                        input: vec![TxIn {
                            previous_output: OutPoint::new(spent, 0),
                            script_sig: ScriptBuf::new(),
                            sequence: Sequence::MAX,
                            witness: Witness::from_slice(&[vec![height as u8; 64]]),
                        }],
                        output: vec![TxOut {
                            value: Amount::from_sat(4_999_990_000),
                            script_pubkey: scripts[(height as usize + 1) % 3].clone(),
                        }],
                    });
                }
                let mut block = Block {
                    header: Header {
                        version: Version::TWO,
                        prev_blockhash: prev,
                        merkle_root: TxMerkleNode::all_zeros(),
                        time: 1_700_000_000 + height * 600,
                        bits: CompactTarget::from_consensus(0x207f_ffff),
                        nonce: 0,
                    },
                    txdata,
                };
                block.header.merkle_root = block
                    .compute_merkle_root()
                    .unwrap_or(block.header.merkle_root);
                blocks.push(block);
            }
            let (events, _) = broadcast::channel(16);
            FixedChain { blocks, events }
        }

        fn find(&self, hash: &BlockHash) -> Option<(u32, &Block)> {
            self.blocks
                .iter()
                .enumerate()
                .find(|(_, b)| b.block_hash() == *hash)
                .map(|(h, b)| (h as u32, b))
        }

        fn spent(&self, height: u32) -> Vec<Vec<SpentOutput>> {
            if height < 2 {
                return Vec::new();
            }
            let prev = &self.blocks[height as usize - 1].txdata[0];
            vec![vec![SpentOutput {
                txout: prev.output[0].clone(),
                height: height - 1,
                coinbase: true,
            }]]
        }
    }

    impl Default for FixedChain {
        fn default() -> Self {
            FixedChain::new()
        }
    }

    impl ChainSource for FixedChain {
        fn network(&self) -> Network {
            Network::Regtest
        }
        fn tip(&self) -> Result<BlockId, ChainError> {
            Ok(BlockId {
                height: HEIGHT,
                hash: self.blocks[HEIGHT as usize].block_hash(),
            })
        }
        fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, ChainError> {
            Ok(self.blocks.get(height as usize).map(Block::block_hash))
        }
        fn header(&self, hash: &BlockHash) -> Result<Option<HeaderEntry>, ChainError> {
            Ok(self.find(hash).map(|(height, b)| HeaderEntry {
                height,
                header: b.header,
                in_active_chain: true,
            }))
        }
        fn headers(&self, start: u32, count: u32) -> Result<Vec<Header>, ChainError> {
            Ok(self
                .blocks
                .iter()
                .skip(start as usize)
                .take(count as usize)
                .map(|b| b.header)
                .collect())
        }
        fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
            Ok(self.find(hash).map(|(_, b)| b.clone()))
        }
        fn spent_outputs(
            &self,
            hash: &BlockHash,
        ) -> Result<Option<Vec<Vec<SpentOutput>>>, ChainError> {
            Ok(self.find(hash).map(|(height, _)| self.spent(height)))
        }
        fn transaction(
            &self,
            txid: &Txid,
            block: Option<&BlockHash>,
        ) -> Result<Option<LocatedTx>, ChainError> {
            for (height, b) in self.blocks.iter().enumerate() {
                if block.is_some_and(|h| *h != b.block_hash()) {
                    continue;
                }
                if let Some(pos) = b.txdata.iter().position(|t| t.compute_txid() == *txid) {
                    return Ok(Some(LocatedTx {
                        tx: b.txdata[pos].clone(),
                        location: Some(TxLocation {
                            block_hash: b.block_hash(),
                            height: height as u32,
                            position: pos as u32,
                        }),
                    }));
                }
            }
            Ok(None)
        }
        fn mempool(&self) -> Result<Vec<MempoolEntry>, ChainError> {
            Ok(Vec::new())
        }
        fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
            self.events.subscribe()
        }
        fn broadcast(&self, tx: &Transaction) -> Result<Txid, ChainError> {
            Ok(tx.compute_txid())
        }
        fn broadcast_package(&self, _txs: &[Transaction]) -> Result<PackageOutcome, ChainError> {
            Err(ChainError::Invalid("packages are not relayed here".into()))
        }
        fn estimate_fee(
            &self,
            target_blocks: u16,
            _mode: FeeMode,
        ) -> Result<Option<FeeEstimate>, ChainError> {
            Ok((target_blocks > 2).then_some(FeeEstimate {
                fee_rate: FeeRate::from_sat_per_vb_u32(2),
                blocks: target_blocks,
            }))
        }
        fn relay_fee(&self) -> Result<FeeRate, ChainError> {
            Ok(FeeRate::from_sat_per_vb_u32(1))
        }
    }

    /// A query over an index synced to [`FixedChain`], in a temporary directory kept for the
    /// life of the process (libFuzzer exits without running destructors, so the directory,
    /// about 200 KiB named `moip-fuzz-electrum*`, stays behind in the temporary folder).
    pub fn indexed_query() -> Query {
        let dir = tempfile::Builder::new()
            .prefix("moip-fuzz-electrum")
            .tempdir()
            .expect("tempdir");
        let index = Arc::new(Index::open(&dir.path().join("index")).expect("index"));
        // The directory stays; its path is freed (a forgotten `TempDir` is a leak to ASan).
        let _kept = dir.keep();
        let source: Arc<dyn ChainSource> = Arc::new(FixedChain::new());
        Syncer {
            index: &index,
            source: source.as_ref(),
            threads: 1,
        }
        .sync(&mut |_| {})
        .expect("sync");
        Query::new(index, source, 1_000)
    }
}

pub mod moneysocket {
    //! The codecs both Moneysocket generations share: BigSize, TLV streams and bech32, each
    //! checked to re-encode what it decoded byte for byte.

    use moip_moneysocket::encoding::{bech32, bigsize, tlv};

    /// Decodes `data` with every shared primitive and checks the round trips.
    pub fn primitives(data: &[u8]) {
        if let Ok((value, rest)) = bigsize::decode(data) {
            let used = &data[..data.len() - rest.len()];
            assert_eq!(bigsize::to_vec(value), used, "bigsize {used:02x?}");
            assert_eq!(bigsize::encoded_len(value), used.len());
        }
        if let Ok((record, rest)) = tlv::Tlv::decode(data) {
            let used = &data[..data.len() - rest.len()];
            assert_eq!(tlv::to_vec(record.tlv_type, record.value), used, "tlv");
        }
        if tlv::validate(data).is_ok() {
            let mut again = Vec::new();
            for record in tlv::iter(data) {
                let record = record.expect("a validated stream iterates");
                tlv::encode(record.tlv_type, record.value, &mut again);
            }
            assert_eq!(again, data, "tlv stream");
        } else {
            let _ = tlv::iter(data).count();
        }
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok((hrp, payload)) = bech32::decode(text) {
                let again = bech32::encode(&hrp, &payload).expect("what decodes encodes");
                assert_eq!(again, text.to_ascii_lowercase(), "bech32 {text:?}");
            }
        }
    }
}

pub mod community {
    //! A community of the Work protocol over an in-memory ledger, with one open task.

    use moip_assets::ledger::{
        AccountId, CollateralSource, Ledger, MemoryJournal, TokenInfo, TokenLedger,
    };
    use moip_work::community::Community;
    use moip_work::events::{decode, encode, Message, TaskBody};
    use moip_work::identity::VerifierRules;
    use moip_work::task::Rules;
    use moip_work::trust::Params;
    use nostr_sdk::Keys;

    /// The community's id.
    pub const ID: &str = "bakery";
    /// The open task.
    pub const TASK: &str = "paint-the-oven";
    /// The clock the community is at.
    pub const NOW: u64 = 1_800_000_000;

    fn account(keys: &Keys) -> AccountId {
        AccountId::from_bytes(keys.public_key().to_bytes())
    }

    /// The community, its employer's keys, and a member's keys.
    pub fn with_task() -> (Community<Ledger<MemoryJournal>>, Keys, Keys) {
        let founders = [
            Keys::parse(&"11".repeat(32)).expect("key"),
            Keys::parse(&"12".repeat(32)).expect("key"),
        ];
        let employer = Keys::parse(&"13".repeat(32)).expect("key");
        let member = Keys::parse(&"14".repeat(32)).expect("key");
        let mut ledger = Ledger::create(
            MemoryJournal::default(),
            TokenInfo {
                id: ID.into(),
                name: "Bakery hours".into(),
                symbol: "BKH".into(),
            },
        )
        .expect("ledger");
        ledger
            .deposit(
                100_000,
                CollateralSource::Lightning {
                    payment_hash: "ab".repeat(32),
                },
            )
            .expect("deposit");
        ledger.mint(&account(&employer), 20_000).expect("mint");
        let mut community = Community::new(
            ID,
            ledger,
            &founders.iter().map(account).collect::<Vec<_>>(),
            Rules::default(),
            VerifierRules::default(),
            Params::default(),
        );
        let post = Message::Post {
            task: TASK.into(),
            body: TaskBody {
                category: "painting".into(),
                geohash: "u33dc0".into(),
                evidence_required: vec!["photo-after".into(), "receipt".into()],
                reward: 1_000,
                deadline: NOW + 100 * 3_600,
            },
        };
        let event = encode(&employer, ID, &post, NOW - 60).expect("sign");
        community
            .apply(&decode(&event).expect("verify"), NOW - 60)
            .expect("post");
        (community, employer, member)
    }
}
