//! The Work protocol's events as the community service reads them off a relay: `decode` (id,
//! signature, kind, tags, content), receipts and NIP-85 scores. Fuzz JSON rarely carries a valid
//! signature, so the event it describes is also signed with a fixed key and decoded again; what
//! decodes must encode and decode to the same message.

use std::sync::OnceLock;

use moip_assets::ledger::AccountId;
use moip_work::events::{decode, encode};
use moip_work::receipt::{decode_receipt, decode_score, encode_receipt, encode_score};
use nostr_sdk::{Event, EventBuilder, JsonUtil, Keys, UnsignedEvent};

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::parse(&"03".repeat(32)).expect("key"))
}

fn check(event: &Event) {
    let keys = keys();
    // Each decoder checks the signature: what it accepts was signed by the event's key, and is
    // read as that author's.
    let verified = event.verify().is_ok();
    if let Ok(signed) = decode(event) {
        assert!(verified, "decode accepted a bad signature");
        assert_eq!(
            signed.author,
            AccountId::from_bytes(event.pubkey.to_bytes()),
            "author"
        );
        assert_eq!(signed.event_id, event.id.to_bytes(), "event id");
        let community = signed.community.clone().unwrap_or_else(|| "bakery".into());
        let again = encode(keys, &community, &signed.message, signed.created_at)
            .expect("a decoded message encodes");
        let back = decode(&again).expect("an encoded message decodes");
        assert_eq!(back.message, signed.message, "message round trip");
        assert_eq!(back.community.is_some(), signed.community.is_some());
    }
    let community = moip_work::events::first_value(event, "h").unwrap_or("bakery");
    if let Ok(receipt) = decode_receipt(event, &event.pubkey, community) {
        assert!(verified, "decode_receipt accepted a bad signature");
        if let Ok(again) = encode_receipt(keys, community, &receipt) {
            let back = decode_receipt(&again, &keys.public_key(), community);
            assert_eq!(back.as_ref(), Ok(&receipt), "receipt round trip");
        }
    }
    if let Ok((subject, rank)) = decode_score(event) {
        assert!(verified, "decode_score accepted a bad signature");
        let again = encode_score(keys, community, &subject, rank, 0).expect("a score encodes");
        assert_eq!(
            decode_score(&again),
            Ok((subject, rank)),
            "score round trip"
        );
    }
}

/// One input of the `work_event` target.
pub fn work_event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let template = match Event::from_json(text) {
        Ok(event) => {
            check(&event);
            Some((
                event.kind,
                event.tags.clone(),
                event.content.clone(),
                event.created_at,
            ))
        }
        Err(_) => UnsignedEvent::from_json(text)
            .ok()
            .map(|u| (u.kind, u.tags, u.content, u.created_at)),
    };
    if let Some((kind, tags, content, created_at)) = template {
        let signed = EventBuilder::new(kind, content)
            .tags(tags)
            .custom_created_at(created_at)
            .sign_with_keys(keys());
        if let Ok(event) = signed {
            check(&event);
        }
    }
}
