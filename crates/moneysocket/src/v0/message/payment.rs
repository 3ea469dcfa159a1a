//! Payment fields of v0 messages: invoices and preimages.

use std::fmt;
use std::str::FromStr;

use crate::encoding::hex;
use crate::error::HexError;

/// Most characters a `NOTIFY_PREIMAGE` `ext` field may hold.
pub const MAX_EXT_CHARS: usize = 4096;

/// A BOLT #11 invoice, checked by its prefix only: `lnbc` (mainnet, and regtest's `lnbcrt`) or
/// `lntb` (testnet, and signet's `lntbs`). The wallet checks the rest.
///
/// The references accept `lnbc` only, which shuts testnet and signet wallets out of the
/// protocol; a moip provider serves whatever network its node runs on, so both prefixes pass.
/// A reference app still refuses a testnet invoice on its side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bolt11(String);

/// The invoice text starts with none of the BOLT #11 network prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("doesn't look like a bolt11")]
pub struct NotBolt11;

/// The human-readable prefixes of BOLT #11 invoices: mainnet `lnbc` (regtest `lnbcrt` extends
/// it) and testnet `lntb` (signet `lntbs` extends it).
const NETWORK_PREFIXES: [&str; 2] = ["lnbc", "lntb"];

impl Bolt11 {
    /// The invoice text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Bolt11 {
    type Err = NotBolt11;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if NETWORK_PREFIXES.iter().any(|p| s.starts_with(p)) {
            Ok(Bolt11(s.to_owned()))
        } else {
            Err(NotBolt11)
        }
    }
}

impl fmt::Display for Bolt11 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 32-byte payment preimage, written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Preimage([u8; 32]);

impl Preimage {
    /// Wraps preimage bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Preimage(bytes)
    }

    /// The preimage bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Preimage({self})")
    }
}

impl FromStr for Preimage {
    type Err = HexError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        hex::decode_array(s).map(Preimage)
    }
}

/// The free-form `ext` string of `NOTIFY_PREIMAGE`, at most [`MAX_EXT_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PreimageExt(String);

/// The `ext` text is longer than [`MAX_EXT_CHARS`] characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ext is larger than 4096 characters")]
pub struct ExtTooLong;

impl PreimageExt {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PreimageExt {
    type Err = ExtTooLong;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.chars().count() > MAX_EXT_CHARS {
            Err(ExtTooLong)
        } else {
            Ok(PreimageExt(s.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{bolt11_amount_msat, bolt11_shaped};
    use crate::v0::message::{Body, Message, NotificationKind, RequestKind};
    use bitcoin::hashes::{sha256, Hash};
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};

    /// A real, signed invoice for 25 000 msat on `currency`, made with a throwaway key.
    fn invoice(currency: Currency) -> String {
        let secp = Secp256k1::new();
        let key = SecretKey::from_slice(&[0x42; 32]).expect("key");
        InvoiceBuilder::new(currency)
            .description("moip test".into())
            .payment_hash(sha256::Hash::hash(b"preimage"))
            .payment_secret(PaymentSecret([7; 32]))
            .duration_since_epoch(std::time::Duration::from_secs(1_765_000_000))
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(25_000)
            .build_signed(|hash| secp.sign_ecdsa_recoverable(hash, &key))
            .expect("signed invoice")
            .to_string()
    }

    const NETWORKS: [(Currency, &str); 4] = [
        (Currency::Bitcoin, "lnbc"),
        (Currency::BitcoinTestnet, "lntb"),
        (Currency::Signet, "lntbs"),
        (Currency::Regtest, "lnbcrt"),
    ];

    /// Invoices of every network are accepted, carried in `NOTIFY_INVOICE` and `REQUEST_PAY`
    /// (decoded as a peer's message would be), and read for their amount. Before, `lntb` and
    /// `lntbs` were refused as "doesn't look like a bolt11".
    #[test]
    fn invoices_of_every_network_are_carried() {
        for (currency, prefix) in NETWORKS {
            let text = invoice(currency);
            assert!(text.starts_with(&format!("{prefix}250n1")), "{text}");
            let bolt11: Bolt11 = text.parse().unwrap_or_else(|e| panic!("{prefix}: {e}"));
            assert_eq!(bolt11.as_str(), text);
            assert!(bolt11_shaped(&text), "{prefix}");
            assert_eq!(bolt11_amount_msat(&text), Some(25_000), "{prefix}");

            let notify = Message::notification(
                None,
                NotificationKind::Invoice {
                    bolt11: bolt11.clone(),
                },
            );
            let decoded = Message::decode(&notify.encode()).expect("NOTIFY_INVOICE decodes");
            let Body::Notification(n) = decoded.body else {
                panic!("not a notification")
            };
            assert_eq!(
                n.kind,
                NotificationKind::Invoice {
                    bolt11: bolt11.clone()
                }
            );

            let pay = Message::request(RequestKind::Pay {
                bolt11: bolt11.clone(),
                msats: None,
            });
            let decoded = Message::decode(&pay.encode()).expect("REQUEST_PAY decodes");
            let Body::Request(r) = decoded.body else {
                panic!("not a request")
            };
            assert_eq!(
                r.kind,
                RequestKind::Pay {
                    bolt11,
                    msats: None
                }
            );
        }
    }

    #[test]
    fn text_of_no_network_is_refused() {
        for text in [
            "",
            "ln",
            "lnxy1qqqq",
            "lightning:lnbc1",
            "bc1qxyz",
            "LNBC250N1P",
        ] {
            assert_eq!(text.parse::<Bolt11>(), Err(NotBolt11), "{text:?}");
        }
    }
}
