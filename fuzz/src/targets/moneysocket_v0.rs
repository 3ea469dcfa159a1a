//! Moneysocket v0, the wire deployed apps speak: bech32 beacons and their TLVs, wads, provider
//! info, JSON messages, and frames — clear, or AES-256-CBC under the key of a fixed seed.
//! Whatever decodes must encode and decode again to the same value.

use moip_moneysocket::v0::beacon::Beacon;
use moip_moneysocket::v0::frame::{self, BLOCK_LEN};
use moip_moneysocket::v0::message::Message;
use moip_moneysocket::v0::provider_info::ProviderInfo;
use moip_moneysocket::v0::seed::derive_aes_key;
use moip_moneysocket::v0::wad::Wad;
use moip_moneysocket::SharedSeed;
use serde_json::Value;

fn message(bytes: &[u8]) {
    if let Ok(m) = Message::decode(bytes) {
        assert_eq!(Message::decode(&m.encode()).as_ref(), Ok(&m), "message");
        let _ = Message::from_json_value(&m.to_json_value());
    }
}

/// One input of the `moneysocket_v0` target.
pub fn moneysocket_v0(data: &[u8]) {
    crate::moneysocket::primitives(data);
    let key = derive_aes_key(&SharedSeed::from_bytes([7; 16]));

    if let Ok(b) = Beacon::decode_tlv(data) {
        assert_eq!(
            Beacon::decode_tlv(&b.encode_tlv()).as_ref(),
            Ok(&b),
            "beacon tlv"
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(b) = Beacon::from_bech32(text) {
            let again = b.to_bech32().expect("a decoded beacon encodes");
            assert_eq!(
                Beacon::from_bech32(&again).as_ref(),
                Ok(&b),
                "beacon bech32"
            );
        }
    }

    message(data);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        if let Ok(w) = Wad::from_json_value(&value) {
            assert_eq!(
                Wad::from_json_value(&w.to_json_value()).as_ref(),
                Ok(&w),
                "wad"
            );
        }
        if let Ok(m) = Message::from_json_value(&value) {
            assert_eq!(
                Message::decode(&m.encode()).as_ref(),
                Ok(&m),
                "message json"
            );
        }
        if let Value::Object(map) = &value {
            if let Ok(info) = ProviderInfo::from_json_map(map) {
                let mut again = serde_json::Map::new();
                info.write_json_map(&mut again);
                assert_eq!(
                    ProviderInfo::from_json_map(&again).as_ref(),
                    Ok(&info),
                    "info"
                );
            }
        }
    }

    // Frames off the wire: a relay (no key) and a seed holder.
    let _ = frame::classify(data);
    let _ = frame::decode_frame(data, None);
    if let Ok(m) = frame::decode_frame(data, Some(&key)) {
        let again = frame::encode_frame_with_iv(&m, &key, &[9; BLOCK_LEN]).expect("encodes");
        assert_eq!(
            frame::decode_frame(&again, Some(&key)).as_ref(),
            Ok(&m),
            "frame"
        );
    }
    // The data as the plaintext of an encrypted frame, to reach the message decoder through
    // the decryption.
    let sealed = frame::encrypt_with_iv(&key, &[3; BLOCK_LEN], data);
    let opened = frame::decrypt(&key, &sealed).expect("own frame decrypts");
    if data.last() != Some(&0) {
        assert_eq!(opened, data, "cbc round trip");
    }
    let _ = frame::decode_frame(&sealed, Some(&key));
}
