//! Moneysocket v1, the RFC draft: TLV beacons in bech32, wads, provider info and TLV-framed
//! messages carrying JSON. Whatever decodes must encode and decode again to the same value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moip_moneysocket::v1::beacon::Beacon;
use moip_moneysocket::v1::message::Message;
use moip_moneysocket::v1::provider_info::ProviderInfo;
use moip_moneysocket::v1::wad::Wad;
use serde_json::Value;

/// One input of the `moneysocket_v1` target.
pub fn moneysocket_v1(data: &[u8]) {
    crate::moneysocket::primitives(data);
    // A fixed clock, so a run is reproducible; far ahead, so stamped messages are not refused
    // for being from the future.
    let now = UNIX_EPOCH + Duration::from_secs(1 << 40);
    let _ = Message::decode(data, SystemTime::now());
    if let Ok(m) = Message::decode(data, now) {
        assert_eq!(
            Message::decode(&m.encode(), now).as_ref(),
            Ok(&m),
            "message"
        );
    }
    if let Ok(b) = Beacon::decode_tlv(data) {
        let again = Beacon::decode_tlv(&b.encode_tlv()).expect("own beacon decodes");
        assert_eq!(again, b, "beacon tlv");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(b) = Beacon::from_bech32(text) {
            if let Ok(again) = b.to_bech32() {
                assert_eq!(
                    Beacon::from_bech32(&again).as_ref(),
                    Ok(&b),
                    "beacon bech32"
                );
            }
        }
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        if let Ok(w) = Wad::from_json_value(&value) {
            assert_eq!(
                Wad::from_json_value(&w.to_json_value()).as_ref(),
                Ok(&w),
                "wad"
            );
            let _ = w.to_string();
        }
        if let Ok(info) = ProviderInfo::from_json_value(&value) {
            let again = ProviderInfo::from_json_value(&info.to_json_value());
            assert_eq!(again.as_ref(), Ok(&info), "provider info");
        }
    }
}
