//! The status hash of a script (protocol-basics.rst, "Status"): `sha256` of the concatenation of
//! `"{txid}:{height}:"` over its history — confirmed in chain order, then mempool in canonical
//! order — or `null` without history.

use std::fmt::Write as _;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::Txid;

/// Computes a status from `(txid, height)` pairs already in protocol order.
pub fn status_hash(history: impl IntoIterator<Item = (Txid, i64)>) -> Option<String> {
    let mut text = String::new();
    for (txid, height) in history {
        write!(text, "{txid}:{height}:").expect("writing to a string cannot fail");
    }
    if text.is_empty() {
        return None;
    }
    Some(sha256::Hash::hash(text.as_bytes()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mempool::display_order;
    use crate::merkle::root_from_branch;
    use bitcoin::hashes::Hash;

    fn txid(s: &str) -> Txid {
        s.parse().expect("txid")
    }

    /// The worked example of the spec (protocol-basics.rst, "Status Example", regtest address
    /// bcrt1qn7d2x7272lznt5hhk9s07q3cqnrqljnwladrd3).
    #[test]
    fn reproduces_the_spec_status_example() {
        let confirmed = [
            (
                txid("a6c9c361bd0bc536d6a22648efbf8f9b200e425ef6c3a7a9669dc444c532a347"),
                2472,
            ),
            (
                txid("9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c"),
                2473,
            ),
            (
                txid("770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30"),
                2473,
            ),
        ];
        // Mempool transactions given out of order; the canonical sort puts height 0 first, then
        // by txid in display order (80.. before e0..), then height -1.
        let mut mempool = [
            (
                txid("e02a1dadfa83b996b24175df807b271ea5d02937ef5b35c195fac1e1bdc3198f"),
                0i64,
            ),
            (
                txid("bb4c8ab438c13b89ca80d1d5bee25b0b6b7f55673f4d801998ba97db161d9e85"),
                -1,
            ),
            (
                txid("80b19848aed792565ab7c5a79b7c2a00fbf985741579396ebe0ab6098e607311"),
                0,
            ),
        ];
        mempool.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| display_order(&a.0).cmp(&display_order(&b.0)))
        });
        assert_eq!(mempool[0].0.to_string()[..2], *"80");
        let status = status_hash(confirmed.into_iter().chain(mempool));
        assert_eq!(
            status.as_deref(),
            Some("78e96c6562cafa71c115503b9411fdfdc595a45031e2ab76ff75162fe1b0590d")
        );
        assert_eq!(status_hash(Vec::new()), None);
    }

    /// The spec's two proofs for block 2473 lead to the same Merkle root.
    #[test]
    fn spec_merkle_proofs_agree() {
        let h = |s: &str| txid(s).to_byte_array();
        let root_a = root_from_branch(
            h("9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c"),
            &[
                h("9b977e4cc0b2eb44cb5ea2adb30bf6eae892c9a838111031cb49c97d8ad57309"),
                h("e7a2891bd8f96488681a596f619de4d88a22d3b08a8aee3b44bbdd913e3e3562"),
            ],
            1,
        );
        let root_b = root_from_branch(
            h("770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30"),
            &[
                h("770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30"),
                h("ee43317b1b79a9a6b101df711a26d12a88b1419f63db15161a9fdb587fabae63"),
            ],
            2,
        );
        assert_eq!(root_a, root_b);
    }
}
