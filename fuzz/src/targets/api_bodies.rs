//! The REST API's JSON bodies: deposits, prepared actions, pairing, and signed redemption
//! requests. A prepared action is read against a community with one open task, and whatever a
//! form prepares must sign and decode back to the same action (a form the node accepts is an
//! event the node accepts).

use crate::community::{with_task, ID, NOW};
use moip::actions::{self, decode_redeem, redeem_builder, Fields, Prepared, RedeemRequest};
use moip::api::{BeaconPairingRequest, DepositRequest, NwcPairingRequest, PrepareRequest};
use moip_assets::ledger::{AccountId, Ledger, MemoryJournal};
use moip_work::community::Community;
use nostr_sdk::{Event, EventBuilder, JsonUtil, Keys};

thread_local! {
    static COMMUNITY: (Community<Ledger<MemoryJournal>>, Keys, Keys) = with_task();
}

fn key(text: &str) {
    // Hex keys read back as the same 64 digits; npubs as the key they encode.
    if let Ok(account) = text.parse::<AccountId>() {
        assert_eq!(
            account.to_string(),
            text.to_ascii_lowercase(),
            "hex key {text:?}"
        );
    }
    if let Some(account) = actions::parse_key(text) {
        assert_eq!(
            actions::parse_key(&account.to_string()),
            Some(account),
            "key {text:?}"
        );
    }
}

fn prepare(fields: &Fields, community: &Community<Ledger<MemoryJournal>>, member: &Keys) {
    let _ = actions::amount(fields, "amount");
    match actions::prepare(fields, community, NOW) {
        Ok(Prepared::Work(message)) => {
            let event = moip_work::events::encode(member, ID, &message, NOW)
                .expect("a prepared action signs");
            let signed = moip_work::events::decode(&event)
                .unwrap_or_else(|e| panic!("a prepared action does not decode: {e}: {message:?}"));
            assert_eq!(signed.message, message, "prepared action round trip");
        }
        Ok(Prepared::Redeem { amount, invoice }) => {
            let request = RedeemRequest { amount, invoice };
            let event = redeem_builder(ID, &request, NOW)
                .sign_with_keys(member)
                .expect("signs");
            let (who, back) = decode_redeem(&event, ID, NOW).expect("a prepared redemption reads");
            assert_eq!(who, AccountId::from_bytes(member.public_key().to_bytes()));
            assert_eq!(back, request, "redemption round trip");
        }
        Err(_) => {}
    }
}

fn redeem(text: &str, member: &Keys) {
    if let Ok(event) = Event::from_json(text) {
        // A redemption is read only with a valid signature, as its signer's.
        if let Ok((who, _)) = decode_redeem(&event, ID, NOW) {
            assert!(event.verify().is_ok(), "a bad signature was read");
            assert_eq!(who, AccountId::from_bytes(event.pubkey.to_bytes()));
        }
        // The same request signed for real, to get past the signature.
        let signed = EventBuilder::new(event.kind, event.content.clone())
            .tags(event.tags.clone())
            .custom_created_at(event.created_at)
            .sign_with_keys(member);
        if let Ok(signed) = signed {
            let member = AccountId::from_bytes(member.public_key().to_bytes());
            for now in [NOW, event.created_at.as_secs()] {
                if let Ok((who, _)) = decode_redeem(&signed, ID, now) {
                    assert_eq!(who, member, "redemption signer");
                }
            }
        }
    }
}

/// One input of the `api_bodies` target.
pub fn api_bodies(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    COMMUNITY.with(|(community, _, member)| {
        key(text);
        if let Ok(r) = serde_json::from_str::<DepositRequest>(text) {
            if let Some(pubkey) = r.pubkey {
                key(pubkey.trim());
            }
        }
        if let Ok(r) = serde_json::from_str::<PrepareRequest>(text) {
            key(r.pubkey.trim());
            prepare(&r.fields, community, member);
        }
        // The fields alone, as the dashboard's forms post them.
        if let Ok(fields) = serde_json::from_str::<Fields>(text) {
            prepare(&fields, community, member);
        }
        let _ = serde_json::from_str::<NwcPairingRequest>(text);
        let _ = serde_json::from_str::<BeaconPairingRequest>(text);
        redeem(text, member);
    });
}
