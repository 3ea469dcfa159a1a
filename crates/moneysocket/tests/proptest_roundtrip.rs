//! Property tests: every encoder's output decodes to the same value, and no decoder panics on
//! arbitrary or mutated input.

use std::num::{NonZeroU16, NonZeroU64};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moip_moneysocket::encoding::tlv::{self, RawTlv};
use moip_moneysocket::encoding::{bech32, bigsize};
use moip_moneysocket::v0::location::{
    Location as V0Location, PlaceholderLocation, WebSocketLocation as V0WebSocket,
};
use moip_moneysocket::v0::message::{
    Body, Message as V0Message, Notification, NotificationKind, Request, RequestKind,
};
use moip_moneysocket::v0::provider_info::ProviderInfo as V0ProviderInfo;
use moip_moneysocket::v0::wad::{Wad as V0Wad, WadFields};
use moip_moneysocket::v1::beacon::{
    Beacon, Location, RoleHint, UnknownLocation, WebSocketLocation,
};
use moip_moneysocket::v1::features::Features;
use moip_moneysocket::v1::message::{Message, NotificationSubtype, RequestSubtype};
use moip_moneysocket::v1::provider_info::{ProviderInfo, PublicKeyInfo};
use moip_moneysocket::v1::version::Version;
use moip_moneysocket::v1::wad::{NonBtc, NonBtcFields, Wad};
use moip_moneysocket::{v0, RendezvousId, SharedSeed, Timestamp, Uuid};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

// ---------------------------------------------------------------- strategies

fn seed() -> impl Strategy<Value = SharedSeed> {
    any::<[u8; 16]>().prop_map(SharedSeed::from_bytes)
}

fn uuid_v4() -> impl Strategy<Value = Uuid> {
    any::<[u8; 16]>().prop_map(|b| uuid::Builder::from_random_bytes(b).into_uuid())
}

fn version() -> impl Strategy<Value = Version> {
    any::<[u8; 3]>().prop_map(|[a, b, c]| Version::new(a, b, c))
}

fn port() -> impl Strategy<Value = NonZeroU16> {
    (1u16..).prop_map(|p| NonZeroU16::new(p).unwrap_or(NonZeroU16::MIN))
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<u64>().prop_map(Number::from),
        any::<i64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ]
}

fn non_negative_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<u64>().prop_map(Number::from),
        (0.0f64..1e18).prop_filter_map("finite", Number::from_f64),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn non_null_json() -> impl Strategy<Value = Value> {
    json_value().prop_filter("non-null", |v| !v.is_null())
}

fn features() -> impl Strategy<Value = Features> {
    btree_map("[a-z_]{1,8}", proptest::option::of(non_null_json()), 0..4).prop_map(|m| {
        let names: Vec<String> = m.keys().cloned().collect();
        let data: Map<String, Value> = m
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        Features::new(names, data).unwrap_or_default()
    })
}

/// Records with strictly increasing types above `floor`.
fn ascending_tlvs(floor: u64) -> impl Strategy<Value = Vec<RawTlv>> {
    btree_map(floor + 1..floor + 100_000, vec(any::<u8>(), 0..8), 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(tlv_type, value)| RawTlv { tlv_type, value })
            .collect()
    })
}

fn hostname() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}[a-z0-9](\\.[a-z][a-z0-9]{0,6}){0,3}"
}

fn v1_location() -> impl Strategy<Value = Location> {
    prop_oneof![
        (
            hostname(),
            any::<bool>(),
            port(),
            "[a-z0-9/_.]{0,10}",
            any::<u8>()
        )
            .prop_map(|(host, tls, port, path, pref)| {
                let host = host
                    .parse()
                    .unwrap_or_else(|_| "fallback".parse().expect("valid hostname"));
                Location::WebSocket(
                    WebSocketLocation::new(host, tls)
                        .with_port(port)
                        .with_path(&path)
                        .with_generator_preference(pref),
                )
            }),
        (1u64..100_000, vec(any::<u8>(), 0..12))
            .prop_filter_map("type 0 is WebSocket", |(t, b)| UnknownLocation::new(t, b)
                .map(Location::Unknown)),
    ]
}

fn v1_beacon() -> impl Strategy<Value = Beacon> {
    let role = prop_oneof![
        Just(None),
        Just(Some(RoleHint::ProviderGeneratorSeekingConsumer)),
        Just(Some(RoleHint::ConsumerGeneratorSeekingProvider)),
        Just(Some(RoleHint::AutomaticGenerator)),
    ];
    (
        version(),
        role,
        seed(),
        vec(v1_location(), 1..4),
        ascending_tlvs(3),
        "(-[a-z]{1,6}-)?",
    )
        .prop_filter_map(
            "needs a known location",
            |(version, role, seed, locations, unknown, suffix)| {
                Beacon::new(version, seed, locations)
                    .and_then(|b| b.with_unknown_tlvs(unknown))
                    .and_then(|b| b.with_hrp(&format!("moneysocket{suffix}")))
                    .map(|b| b.with_role_hint(role))
                    .ok()
            },
        )
}

fn v0_location() -> impl Strategy<Value = V0Location> {
    prop_oneof![
        (any::<String>(), any::<bool>(), port()).prop_map(|(host, use_tls, port)| {
            V0Location::WebSocket(V0WebSocket {
                host,
                use_tls,
                port,
            })
        }),
        any::<String>()
            .prop_map(|placeholder| V0Location::WebRtc(PlaceholderLocation { placeholder })),
        any::<String>()
            .prop_map(|placeholder| V0Location::Bluetooth(PlaceholderLocation { placeholder })),
        any::<String>()
            .prop_map(|placeholder| V0Location::Nfc(PlaceholderLocation { placeholder })),
    ]
}

fn short_string(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..=max).prop_map(|c| c.into_iter().collect())
}

fn v0_wad() -> impl Strategy<Value = V0Wad> {
    (
        any::<u64>(),
        any::<bool>(),
        non_negative_number(),
        short_string(20),
        proptest::option::of(short_string(200)),
        proptest::option::of(0u8..=10),
        proptest::option::of(any::<u16>()),
        proptest::option::of(short_string(50)),
        proptest::option::of(short_string(5)),
    )
        .prop_map(
            |(
                msats,
                asset_stable,
                asset_units,
                code,
                countries,
                decimals,
                iso_num,
                name,
                symbol,
            )| {
                V0Wad::new(WadFields {
                    msats,
                    asset_stable,
                    asset_units,
                    code,
                    countries,
                    decimals,
                    iso_num,
                    name,
                    symbol,
                })
                .unwrap_or_else(|_| V0Wad::bitcoin(msats))
            },
        )
}

fn v1_wad() -> impl Strategy<Value = Wad> {
    let non_btc = (
        number(),
        "[A-Za-z ]{1,20}",
        prop_oneof![Just(String::new()), "[A-Z]{3,12}"],
        short_string(6),
        proptest::option::of(non_negative_number()),
        proptest::option::of(0u8..=12),
    )
        .prop_filter_map(
            "valid non-btc",
            |(units, name, code, symbol, rate_timestamp, fmt_decimals)| {
                NonBtc::new(NonBtcFields {
                    units,
                    name,
                    code,
                    symbol,
                    rate_timestamp,
                    iso_num: None,
                    fmt_decimals,
                })
                .ok()
            },
        );
    (number(), proptest::option::of(non_btc)).prop_map(|(msat, non_btc)| match non_btc {
        Some(n) => Wad::with_non_btc(msat, n),
        None => Wad::bitcoin(msat),
    })
}

fn v1_message() -> impl Strategy<Value = Message> {
    let timestamp = prop_oneof![
        (0u64..4_000_000_000).prop_map(Timestamp::from_unix_secs),
        (0.0f64..4e9).prop_filter_map("finite", Timestamp::from_unix_secs_f64),
    ];
    (
        version(),
        timestamp,
        any::<bool>(),
        uuid_v4(),
        btree_map(any::<String>(), json_value(), 0..3),
        features(),
        ascending_tlvs(2),
    )
        .prop_filter_map(
            "valid message",
            |(version, ts, is_request, uuid, data, features, extra_tlvs)| {
                let message = if is_request {
                    Message::request(version, ts, uuid, RequestSubtype::TransportPing)
                } else {
                    Message::notification(
                        version,
                        ts,
                        Some(uuid),
                        NotificationSubtype::TransportPong,
                    )
                };
                message
                    .ok()?
                    .with_subtype_data(data.into_iter().collect())
                    .with_features(features)
                    .with_additional_tlvs(extra_tlvs)
                    .ok()
            },
        )
}

fn v0_message() -> impl Strategy<Value = V0Message> {
    let rid = any::<[u8; 32]>().prop_map(RendezvousId::from_bytes);
    let request_kind = prop_oneof![
        rid.clone()
            .prop_map(|rendezvous_id| RequestKind::Rendezvous { rendezvous_id }),
        Just(RequestKind::Provider),
        Just(RequestKind::Ping),
        (1u64.., proptest::option::of(short_string(40))).prop_map(|(m, description)| {
            RequestKind::Invoice {
                msats: NonZeroU64::new(m).unwrap_or(NonZeroU64::MIN),
                description,
            }
        }),
        ("lnbc[a-z0-9]{0,40}", proptest::option::of(1u64..)).prop_map(|(s, msats)| {
            RequestKind::Pay {
                bolt11: s.parse().expect("lnbc prefix"),
                msats: msats.and_then(NonZeroU64::new),
            }
        }),
    ];
    let info = (
        uuid_v4(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(v0_wad()),
    )
        .prop_map(|(account_uuid, payer, payee, wad)| V0ProviderInfo {
            account_uuid,
            payer,
            payee,
            wad,
        });
    let notification_kind = prop_oneof![
        rid.clone()
            .prop_map(|rendezvous_id| NotificationKind::Rendezvous { rendezvous_id }),
        rid.clone()
            .prop_map(|rendezvous_id| NotificationKind::RendezvousNotReady { rendezvous_id }),
        rid.prop_map(|rendezvous_id| NotificationKind::RendezvousEnd { rendezvous_id }),
        info.prop_map(NotificationKind::Provider),
        Just(NotificationKind::ProviderNotReady),
        Just(NotificationKind::Pong),
        "lnbc[a-z0-9]{0,40}".prop_map(|s| NotificationKind::Invoice {
            bolt11: s.parse().expect("lnbc prefix")
        }),
        (
            any::<[u8; 32]>(),
            proptest::option::of(short_string(40)),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(p, ext, fee_msats)| {
                NotificationKind::Preimage {
                    preimage: v0::message::Preimage::from_bytes(p),
                    ext: ext.map(|e| e.parse().expect("short ext")),
                    fee_msats,
                }
            }),
        (any::<String>(), proptest::option::of(any::<u16>())).prop_map(|(error_msg, code)| {
            NotificationKind::Error {
                error_msg,
                error_code: code.map(v0::message::ErrorCode),
            }
        }),
    ];
    let body = prop_oneof![
        (uuid_v4(), request_kind)
            .prop_map(|(request_uuid, kind)| Body::Request(Request { request_uuid, kind })),
        (
            any::<u128>(),
            proptest::option::of(any::<u128>()),
            notification_kind
        )
            .prop_map(|(n, r, kind)| {
                Body::Notification(Notification {
                    notification_uuid: Uuid::from_u128(n),
                    request_reference_uuid: r.map(Uuid::from_u128),
                    kind,
                })
            }),
    ];
    (
        non_negative_number(),
        any::<String>(),
        body,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..100)),
    )
        .prop_map(|(ts, protocol_version, body, auth_hello)| V0Message {
            timestamp: Timestamp::from_number(ts).unwrap_or_else(|| Timestamp::from_unix_secs(0)),
            protocol_version,
            body,
            auth_hello,
        })
}

fn far_future() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1 << 40)
}

/// Flips, drops or inserts bytes of a valid encoding: inputs that get past the first checks.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, kind, byte) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let at = at % bytes.len();
        match kind % 3 {
            0 => bytes[at] ^= byte | 1,
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, byte),
        }
    }
    bytes
}

// ---------------------------------------------------------------- round trips

proptest! {
    #[test]
    fn bigsize_round_trips(value in any::<u64>(), tail in vec(any::<u8>(), 0..4)) {
        let mut bytes = bigsize::to_vec(value);
        prop_assert_eq!(bytes.len(), bigsize::encoded_len(value));
        bytes.extend(&tail);
        prop_assert_eq!(bigsize::decode(&bytes), Ok((value, &tail[..])));
    }

    #[test]
    fn tlv_round_trips(tlv_type in any::<u64>(), value in vec(any::<u8>(), 0..300)) {
        let bytes = tlv::to_vec(tlv_type, &value);
        let (record, rest) = tlv::Tlv::decode(&bytes).expect("own encoding decodes");
        prop_assert_eq!(record.tlv_type, tlv_type);
        prop_assert_eq!(record.value, &value[..]);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn bech32_round_trips(data in vec(any::<u8>(), 0..600), hrp in "[a-z0-9-]{1,20}") {
        if let Ok(text) = bech32::encode(&hrp, &data) {
            prop_assert!(text.len() <= bech32::MAX_BECH32_LEN);
            prop_assert_eq!(bech32::decode(&text), Ok((hrp.clone(), data.clone())));
            prop_assert_eq!(bech32::decode(&text.to_uppercase()), Ok((hrp, data)));
        }
    }

    #[test]
    fn v0_beacon_round_trips(seed in seed(), locations in vec(v0_location(), 0..4)) {
        let beacon = v0::beacon::Beacon { shared_seed: seed, locations };
        prop_assert_eq!(v0::beacon::Beacon::decode_tlv(&beacon.encode_tlv()), Ok(beacon.clone()));
        if let Ok(text) = beacon.to_bech32() {
            prop_assert_eq!(v0::beacon::Beacon::from_bech32(&text), Ok(beacon));
        }
    }

    #[test]
    fn v1_beacon_round_trips(beacon in v1_beacon()) {
        let mut from_tlv = Beacon::decode_tlv(&beacon.encode_tlv()).expect("own encoding decodes");
        from_tlv = from_tlv.with_hrp(beacon.hrp()).expect("valid hrp");
        prop_assert_eq!(&from_tlv, &beacon);
        if let Ok(text) = beacon.to_bech32() {
            prop_assert_eq!(Beacon::from_bech32(&text), Ok(beacon));
        }
    }

    #[test]
    fn v0_wad_round_trips(wad in v0_wad()) {
        prop_assert_eq!(V0Wad::from_json_value(&wad.to_json_value()), Ok(wad));
    }

    #[test]
    fn v1_wad_round_trips(wad in v1_wad()) {
        let value = wad.to_json_value();
        prop_assert_eq!(Wad::from_json_value(&value), Ok(wad.clone()));
        let _ = wad.to_string();
        let text = serde_json::to_string(&wad).expect("serializes");
        prop_assert_eq!(serde_json::from_str::<Wad>(&text).expect("deserializes"), wad);
    }

    #[test]
    fn v1_provider_info_round_trips(
        uuid in uuid_v4(), wad in v1_wad(), payer in any::<bool>(), payee in any::<bool>(),
        keys in btree_map("([0-9a-f]{2}){1,33}", ("[a-z0-9]{1,10}", vec("[A-Z_]{1,12}", 0..3), proptest::option::of("[A-Za-z]{1,64}")), 0..3),
        features in features(),
    ) {
        let mut info = ProviderInfo::new(uuid, wad, payer, payee).expect("v4 uuid").with_features(features);
        for (key, (curve, key_features, name)) in keys {
            let key_info = PublicKeyInfo::new(curve, key_features, name).expect("valid key info");
            info = info.with_public_key(&key, key_info).expect("hex key");
        }
        prop_assert_eq!(ProviderInfo::from_json_value(&info.to_json_value()), Ok(info));
    }

    #[test]
    fn v1_message_round_trips(message in v1_message()) {
        prop_assert_eq!(Message::decode(&message.encode(), far_future()), Ok(message));
    }

    #[test]
    fn v0_message_round_trips(message in v0_message()) {
        prop_assert_eq!(V0Message::decode(&message.encode()), Ok(message));
    }
}

// ---------------------------------------------------------------- no panics

proptest! {
    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..400)) {
        let _ = bigsize::decode(&bytes);
        let _ = tlv::iter(&bytes).count();
        let _ = v0::beacon::Beacon::decode_tlv(&bytes);
        let _ = Beacon::decode_tlv(&bytes);
        let _ = Message::decode(&bytes, SystemTime::now());
        let _ = V0Message::decode(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = bech32::decode(&text);
        let _ = v0::beacon::Beacon::from_bech32(&text);
        let _ = Beacon::from_bech32(&text);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_json(value in json_value()) {
        let _ = V0Wad::from_json_value(&value);
        let _ = Wad::from_json_value(&value);
        let _ = ProviderInfo::from_json_value(&value);
        let _ = V0Message::from_json_value(&value);
        if let Value::Object(map) = &value {
            let _ = V0ProviderInfo::from_json_map(map);
        }
    }

    #[test]
    fn decoders_never_panic_on_mutated_encodings(
        beacon in v1_beacon(), message in v1_message(), v0_msg in v0_message(),
        seed in seed(), locations in vec(v0_location(), 0..3),
        edits in vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let _ = Beacon::decode_tlv(&mutate(beacon.encode_tlv(), &edits));
        let _ = Message::decode(&mutate(message.encode(), &edits), SystemTime::now());
        let _ = V0Message::decode(&mutate(v0_msg.encode(), &edits));
        let v0_beacon = v0::beacon::Beacon { shared_seed: seed, locations };
        let _ = v0::beacon::Beacon::decode_tlv(&mutate(v0_beacon.encode_tlv(), &edits));
        if let Ok(text) = beacon.to_bech32() {
            let mutated = mutate(text.into_bytes(), &edits);
            let _ = Beacon::from_bech32(&String::from_utf8_lossy(&mutated));
        }
    }
}
