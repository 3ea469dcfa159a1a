//! Nostr Wallet Connect requests as the service reads them: an event off a relay (JSON), its
//! envelope (addressee, expiry, size, encryption tag), its NIP-04 or NIP-44 content, the
//! NIP-47 request inside, and the hashes and preimages the service parses from its fields.
//! The data also travels as the plaintext of a request sealed by a real client, which must open
//! to the same text.

use std::str::FromStr;
use std::sync::OnceLock;

use moip_lightning::{PaymentHash, Preimage};
use moip_nwc::envelope::{self, Encryption, MAX_REQUEST_CONTENT};
use nostr_sdk::nips::nip47::{Method, Request, RequestParams};
use nostr_sdk::{Event, JsonUtil, Keys, Kind};

fn keys() -> &'static (Keys, Keys) {
    static KEYS: OnceLock<(Keys, Keys)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let service = Keys::parse(&"01".repeat(32)).expect("service key");
        let client = Keys::parse(&"02".repeat(32)).expect("client key");
        (service, client)
    })
}

/// A 32-byte hex field, as the service parses it: what parses prints back as the same digits.
fn hex32<T: FromStr + ToString>(s: &str) {
    if let Ok(v) = s.parse::<T>() {
        assert_eq!(v.to_string(), s.trim().to_ascii_lowercase(), "hex32 {s:?}");
    }
}

/// What the service reads from a request's plaintext.
fn request(plaintext: &str) {
    match Request::from_json(plaintext) {
        Ok(request) => match request.params {
            RequestParams::LookupInvoice(p) => {
                if let Some(h) = p.payment_hash {
                    hex32::<PaymentHash>(&h);
                }
            }
            RequestParams::MakeHoldInvoice(p) => hex32::<PaymentHash>(&p.payment_hash),
            RequestParams::SettleHoldInvoice(p) => {
                hex32::<Preimage>(&p.preimage);
                if let Ok(preimage) = p.preimage.parse::<Preimage>() {
                    let _ = preimage.payment_hash();
                }
            }
            RequestParams::CancelHoldInvoice(p) => hex32::<PaymentHash>(&p.payment_hash),
            _ => {}
        },
        Err(_) => {
            // The service still answers a known method with invalid params.
            let _ = serde_json::from_str::<serde_json::Value>(plaintext)
                .ok()
                .and_then(|v| v.get("method")?.as_str()?.parse::<Method>().ok());
        }
    }
}

/// One input of the `nwc_request` target.
pub fn nwc_request(data: &[u8]) {
    let (service, client) = keys();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    hex32::<PaymentHash>(text);

    // An event off a relay.
    if let Ok(event) = Event::from_json(text) {
        let _ = envelope::encryption_of(&event);
        if let Ok((_, plaintext)) = envelope::open_request(service, &event) {
            request(&plaintext);
        }
    }
    // Raw content in either encryption.
    for encryption in [Encryption::Nip44, Encryption::Nip04] {
        if let Ok(plaintext) = envelope::decrypt(service, &client.public_key(), encryption, text) {
            request(&plaintext);
        }
    }
    // The text as a request's plaintext, sealed by the client the way apps do.
    if text.len() <= MAX_REQUEST_CONTENT / 2 {
        request(text);
        for encryption in [Encryption::Nip44, Encryption::Nip04] {
            let Ok(event) = envelope::seal(
                client,
                &service.public_key(),
                encryption,
                Kind::WalletConnectRequest,
                text,
                None,
            ) else {
                continue;
            };
            let event = Event::from_json(event.as_json()).expect("a sealed event parses");
            match envelope::open_request(service, &event) {
                Ok((opened_as, plaintext)) => {
                    assert_eq!(opened_as, encryption);
                    assert_eq!(plaintext, text, "{encryption:?} round trip");
                }
                Err(e) => panic!("an honest {encryption:?} request did not open: {e}"),
            }
        }
    }
}
