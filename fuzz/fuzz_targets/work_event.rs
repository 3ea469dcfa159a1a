//! The Work protocol's events as the community service reads them off a relay: `decode` (id,
//! signature, kind, tags, content), receipts and NIP-85 scores. Fuzz JSON rarely carries a valid
//! signature, so the event it describes is also signed with a fixed key and decoded again; what
//! decodes must encode and decode to the same message.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use moip_work::events::{decode, encode};
use moip_work::receipt::{decode_receipt, decode_score, encode_receipt, encode_score};
use nostr_sdk::{Event, EventBuilder, JsonUtil, Keys, UnsignedEvent};

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::parse(&"03".repeat(32)).expect("key"))
}

fn check(event: &Event) {
    let keys = keys();
    if let Ok(signed) = decode(event) {
        let community = signed.community.clone().unwrap_or_else(|| "bakery".into());
        let again = encode(keys, &community, &signed.message, signed.created_at)
            .expect("a decoded message encodes");
        let back = decode(&again).expect("an encoded message decodes");
        assert_eq!(back.message, signed.message, "message round trip");
        assert_eq!(back.community.is_some(), signed.community.is_some());
    }
    let community = moip_work::events::first_value(event, "h").unwrap_or("bakery");
    if let Ok(receipt) = decode_receipt(event, &event.pubkey, community) {
        if let Ok(again) = encode_receipt(keys, community, &receipt) {
            let back = decode_receipt(&again, &keys.public_key(), community);
            assert_eq!(back.as_ref(), Ok(&receipt), "receipt round trip");
        }
    }
    if let Ok((subject, rank)) = decode_score(event) {
        let again = encode_score(keys, community, &subject, rank, 0).expect("a score encodes");
        assert_eq!(
            decode_score(&again),
            Ok((subject, rank)),
            "score round trip"
        );
    }
}

fuzz_target!(|data: &[u8]| {
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
});
