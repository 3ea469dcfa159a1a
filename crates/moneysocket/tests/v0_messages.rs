//! v0 messages: the JSON the references send, every message name, and the validation rules
//! of py-moneysocket (there are no published v0 message vectors).

use moip_moneysocket::error::{HexError, UuidError};
use moip_moneysocket::v0::message::{
    Body, ErrorCode, Message, MessageError, MessageField as F, Notification, NotificationKind,
    Request, RequestKind, MAX_DESCRIPTION_BYTES, MAX_MESSAGE_LEN,
};
use moip_moneysocket::v0::provider_info::{ProviderInfo, ProviderInfoError, ProviderInfoField};
use moip_moneysocket::v0::wad::Wad;
use moip_moneysocket::{RendezvousId, Timestamp, Uuid};
use serde_json::{json, Value};

const RID: &str = "d678c107fe2913ae1ab79bfba00694aaed75b5a2b0187ea0719919cbfedf9758";
const UUID_A: &str = "a5b32936-3143-4856-bdea-7b3dda7aa5e8";
const UUID_B: &str = "b032ee60-c23c-11eb-a86b-08606ee5ade6";

/// A REQUEST_RENDEZVOUS as py-moneysocket writes it (`json.dumps` of the message dict).
fn rendezvous_request() -> Value {
    json!({"timestamp": 1622048707.3, "protocol": "Moneysocket", "protocol_version": "0.0.0",
           "message_class": "REQUEST", "request_uuid": UUID_A, "request_name": "REQUEST_RENDEZVOUS",
           "rendezvous_id": RID})
}

fn decode(v: &Value) -> Result<Message, MessageError> {
    Message::decode(v.to_string().as_bytes())
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.remove(key);
    }
    v
}

#[test]
fn decodes_the_reference_rendezvous_request() {
    let m = decode(&rendezvous_request()).expect("valid");
    assert_eq!(m.timestamp.as_secs_f64(), 1622048707.3);
    assert_eq!(m.protocol_version, "0.0.0");
    assert!(m.requires_cleartext());
    assert_eq!(m.name(), "REQUEST_RENDEZVOUS");
    match &m.body {
        Body::Request(Request {
            request_uuid,
            kind: RequestKind::Rendezvous { rendezvous_id },
        }) => {
            assert_eq!(request_uuid.to_string(), UUID_A);
            assert_eq!(rendezvous_id.to_string(), RID);
        }
        other => panic!("decoded as {other:?}"),
    }
    // Re-encoding keeps every field, including the float timestamp.
    assert_eq!(m.to_json_value(), rendezvous_request());
}

/// One message of every name; each must survive encode → decode unchanged.
fn every_message() -> Vec<Message> {
    let uuid = |s: &str| s.parse::<Uuid>().expect("uuid");
    let rid: RendezvousId = RID.parse().expect("rid");
    let ts = Timestamp::from_unix_secs(1_600_000_000);
    let request = |kind| {
        Message::new(
            ts.clone(),
            Body::Request(Request {
                request_uuid: uuid(UUID_A),
                kind,
            }),
        )
    };
    let notification = |rrid: Option<Uuid>, kind| {
        Message::new(
            ts.clone(),
            Body::Notification(Notification {
                notification_uuid: uuid(UUID_B),
                request_reference_uuid: rrid,
                kind,
            }),
        )
    };
    let info = ProviderInfo {
        account_uuid: uuid(UUID_A),
        payer: true,
        payee: true,
        wad: Some(Wad::bitcoin(42_000)),
    };
    vec![
        request(RequestKind::Rendezvous { rendezvous_id: rid }),
        request(RequestKind::Provider),
        request(RequestKind::Ping),
        request(RequestKind::Invoice {
            msats: std::num::NonZeroU64::new(1000).expect("non-zero"),
            description: None,
        }),
        request(RequestKind::Invoice {
            msats: std::num::NonZeroU64::new(1000).expect("non-zero"),
            description: Some("tea for two".to_owned()),
        }),
        request(RequestKind::Pay {
            bolt11: "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypq"
                .parse()
                .expect("bolt11"),
            msats: None,
        }),
        request(RequestKind::Pay {
            bolt11: "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypq"
                .parse()
                .expect("bolt11"),
            msats: std::num::NonZeroU64::new(5000),
        }),
        notification(
            Some(uuid(UUID_A)),
            NotificationKind::Rendezvous { rendezvous_id: rid },
        ),
        notification(
            Some(uuid(UUID_A)),
            NotificationKind::RendezvousNotReady { rendezvous_id: rid },
        ),
        notification(None, NotificationKind::RendezvousEnd { rendezvous_id: rid }),
        notification(Some(uuid(UUID_A)), NotificationKind::Provider(info.clone())),
        notification(
            None,
            NotificationKind::Provider(ProviderInfo { wad: None, ..info }),
        ),
        notification(Some(uuid(UUID_A)), NotificationKind::ProviderNotReady),
        notification(Some(uuid(UUID_A)), NotificationKind::Pong),
        notification(
            Some(uuid(UUID_A)),
            NotificationKind::Invoice {
                bolt11: "lnbcrt1xyz".parse().expect("bolt11"),
            },
        ),
        notification(
            None,
            NotificationKind::Preimage {
                preimage: "00".repeat(32).parse().expect("hex"),
                ext: None,
                fee_msats: None,
            },
        ),
        notification(
            Some(uuid(UUID_A)),
            NotificationKind::Preimage {
                preimage: "ab".repeat(32).parse().expect("hex"),
                ext: Some("x".repeat(4096).parse().expect("fits")),
                fee_msats: Some(1234),
            },
        ),
        notification(
            Some(uuid(UUID_A)),
            NotificationKind::Error {
                error_msg: "no route".to_owned(),
                error_code: None,
            },
        ),
        notification(
            Some(uuid(UUID_A)),
            NotificationKind::Error {
                error_msg: "over the limit".to_owned(),
                error_code: Some(ErrorCode::SPENDING_LIMIT),
            },
        ),
    ]
}

#[test]
fn every_message_name_round_trips() {
    let messages = every_message();
    let mut names: Vec<_> = messages.iter().map(Message::name).collect();
    names.dedup();
    assert_eq!(
        names.len(),
        14,
        "all 14 v0 message names are exercised: {names:?}"
    );
    for m in messages {
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes).as_ref(), Ok(&m), "{}", m.name());
        // serde goes through the same validation.
        let via_serde: Message = serde_json::from_slice(&bytes).expect("deserializes");
        assert_eq!(via_serde, m);
        let clear = m.name().contains("RENDEZVOUS");
        assert_eq!(m.requires_cleartext(), clear, "{}", m.name());
    }
}

#[test]
fn common_fields_are_validated_in_reference_order() {
    let base = rendezvous_request();
    let cases: Vec<(Value, MessageError)> = vec![
        (json!([1]), MessageError::NotObject),
        (
            without(base.clone(), "message_class"),
            MessageError::Missing(F::MessageClass),
        ),
        (
            with(base.clone(), "message_class", json!(1)),
            MessageError::WrongType(F::MessageClass),
        ),
        (
            with(base.clone(), "message_class", json!("REPLY")),
            MessageError::UnknownMessageClass("REPLY".into()),
        ),
        (
            without(base.clone(), "timestamp"),
            MessageError::Missing(F::Timestamp),
        ),
        (
            with(base.clone(), "timestamp", json!("now")),
            MessageError::WrongType(F::Timestamp),
        ),
        (
            with(base.clone(), "timestamp", json!(-1)),
            MessageError::NegativeTimestamp,
        ),
        (
            without(base.clone(), "protocol"),
            MessageError::Missing(F::Protocol),
        ),
        (
            with(base.clone(), "protocol", json!("Moneysocket2")),
            MessageError::UnknownProtocol("Moneysocket2".into()),
        ),
        (
            with(base.clone(), "protocol_version", json!(0)),
            MessageError::WrongType(F::ProtocolVersion),
        ),
        (
            with(base.clone(), "request_uuid", json!("nope")),
            MessageError::Uuid {
                field: F::RequestUuid,
                error: UuidError::Invalid,
            },
        ),
        (
            without(base.clone(), "request_name"),
            MessageError::Missing(F::RequestName),
        ),
        (
            with(base.clone(), "request_name", json!("REQUEST_WALLET")),
            MessageError::UnknownRequestName("REQUEST_WALLET".into()),
        ),
        (
            with(base.clone(), "rendezvous_id", json!("zz")),
            MessageError::Hex {
                field: F::RendezvousId,
                error: HexError::InvalidCharacter,
            },
        ),
        (
            with(base.clone(), "rendezvous_id", json!("abcd")),
            MessageError::Hex {
                field: F::RendezvousId,
                error: HexError::InvalidLength {
                    expected: 64,
                    found: 4,
                },
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(decode(&input), Err(want.clone()), "{input}");
    }
    // v0 accepts any UUID version and either hex case.
    assert!(decode(&with(base.clone(), "request_uuid", json!(UUID_B))).is_ok());
    assert!(decode(&with(base, "rendezvous_id", json!(RID.to_uppercase()))).is_ok());
}

#[test]
fn per_name_fields_are_validated() {
    let request = |name: &str, extra: Value| {
        let mut v = json!({"timestamp": 1, "protocol": "Moneysocket", "protocol_version": "0.0.0",
                           "message_class": "REQUEST", "request_uuid": UUID_A, "request_name": name});
        for (k, val) in extra.as_object().cloned().unwrap_or_default() {
            v[k] = val;
        }
        decode(&v)
    };
    assert_eq!(
        request("REQUEST_INVOICE", json!({})),
        Err(MessageError::Missing(F::Msats))
    );
    assert_eq!(
        request("REQUEST_INVOICE", json!({"msats": 0})),
        Err(MessageError::NonPositiveMsats)
    );
    assert_eq!(
        request("REQUEST_INVOICE", json!({"msats": -5})),
        Err(MessageError::NonPositiveMsats)
    );
    assert_eq!(
        request("REQUEST_INVOICE", json!({"msats": 1.5})),
        Err(MessageError::WrongType(F::Msats))
    );
    assert_eq!(
        // No network's prefix (testnet's `lntb` and signet's `lntbs` are accepted, unlike in
        // the references: see `v0::message::payment`).
        request("REQUEST_PAY", json!({"bolt11": "lnxy1..."})),
        Err(MessageError::NotBolt11)
    );
    assert_eq!(
        request("REQUEST_PAY", json!({"bolt11": 5})),
        Err(MessageError::WrongType(F::Bolt11))
    );

    let notification = |name: &str, extra: Value| {
        let mut v = json!({"timestamp": 1, "protocol": "Moneysocket", "protocol_version": "0.0.0",
                           "message_class": "NOTIFICATION", "notification_uuid": UUID_B,
                           "request_reference_uuid": null, "notification_name": name});
        for (k, val) in extra.as_object().cloned().unwrap_or_default() {
            v[k] = val;
        }
        decode(&v)
    };
    assert_eq!(
        notification("NOTIFY_PREIMAGE", json!({"preimage": "00".repeat(32)})),
        Err(MessageError::Missing(F::Ext))
    );
    assert_eq!(
        notification(
            "NOTIFY_PREIMAGE",
            json!({"preimage": "00".repeat(32), "ext": "x".repeat(4097)})
        ),
        Err(MessageError::ExtTooLong)
    );
    assert_eq!(
        notification(
            "NOTIFY_PREIMAGE",
            json!({"preimage": "00".repeat(31), "ext": null})
        ),
        Err(MessageError::Hex {
            field: F::Preimage,
            error: HexError::InvalidLength {
                expected: 64,
                found: 62
            }
        })
    );
    assert_eq!(
        notification("NOTIFY_ERROR", json!({"error_msg": null})),
        Err(MessageError::WrongType(F::ErrorMsg))
    );
    assert_eq!(
        notification(
            "NOTIFY_PROVIDER",
            json!({"account_uuid": UUID_A, "payer": true, "payee": "yes", "wad": null})
        ),
        Err(MessageError::ProviderInfo(ProviderInfoError::WrongType(
            ProviderInfoField::Payee
        )))
    );
    assert_eq!(
        notification(
            "NOTIFY_PROVIDER",
            json!({"account_uuid": UUID_A, "payer": true, "payee": true, "wad": {"msats": 1}})
        ),
        Err(MessageError::ProviderInfo(ProviderInfoError::Wad(
            moip_moneysocket::v0::wad::WadError::KeySet
        )))
    );
    assert_eq!(
        notification("NOTIFY_PING", json!({})),
        Err(MessageError::UnknownNotificationName("NOTIFY_PING".into()))
    );
    let mut missing_rrid = json!({"timestamp": 1, "protocol": "Moneysocket", "protocol_version": "0.0.0",
                                  "message_class": "NOTIFICATION", "notification_uuid": UUID_B,
                                  "notification_name": "NOTIFY_PONG"});
    assert_eq!(
        decode(&missing_rrid),
        Err(MessageError::Missing(F::RequestReferenceUuid))
    );
    missing_rrid["request_reference_uuid"] = json!(7);
    assert_eq!(
        decode(&missing_rrid),
        Err(MessageError::WrongType(F::RequestReferenceUuid))
    );
}

#[test]
fn frames_are_bounded_and_must_be_json() {
    let big = vec![b' '; MAX_MESSAGE_LEN + 1];
    assert_eq!(
        Message::decode(&big),
        Err(MessageError::TooLong {
            len: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        })
    );
    assert_eq!(Message::decode(b"\xff\xfe"), Err(MessageError::NotJson));
    assert_eq!(Message::decode(b"{\"a\":"), Err(MessageError::NotJson));
}

/// moip's extension keys are written only when set, so plain messages stay byte-identical to
/// the references'; when set they decode back, and bad values are refused with the field named.
#[test]
fn extension_keys_are_optional_and_validated() {
    let plain = Message::request(RequestKind::Invoice {
        msats: std::num::NonZeroU64::new(1000).expect("non-zero"),
        description: None,
    });
    let json = String::from_utf8(plain.encode()).expect("utf8");
    for key in ["description", "moip_auth_hello", "fee_msats", "error_code"] {
        assert!(!json.contains(key), "{json}");
    }
    let mut hello = Message::request(RequestKind::Provider);
    hello.auth_hello = Some(vec![7; 71]);
    assert_eq!(Message::decode(&hello.encode()), Ok(hello.clone()));

    let mut value = hello.to_json_value();
    let bad = |value: &serde_json::Value| Message::decode(value.to_string().as_bytes());
    value["moip_auth_hello"] = serde_json::json!(12);
    assert_eq!(bad(&value), Err(MessageError::WrongType(F::AuthHello)));
    value["moip_auth_hello"] = serde_json::json!("zz");
    assert!(matches!(
        bad(&value),
        Err(MessageError::Hex {
            field: F::AuthHello,
            ..
        })
    ));
    value["moip_auth_hello"] = serde_json::json!("00".repeat(200));
    assert_eq!(bad(&value), Err(MessageError::OutOfRange(F::AuthHello)));

    let mut invoice = plain.to_json_value();
    invoice["description"] = serde_json::json!("x".repeat(MAX_DESCRIPTION_BYTES + 1));
    assert_eq!(bad(&invoice), Err(MessageError::DescriptionTooLong));
    invoice["description"] = serde_json::json!(["list"]);
    assert_eq!(bad(&invoice), Err(MessageError::WrongType(F::Description)));

    let mut pay = Message::request(RequestKind::Pay {
        bolt11: "lnbcrt1xyz".parse().expect("bolt11"),
        msats: None,
    })
    .to_json_value();
    pay["msats"] = serde_json::json!(0);
    assert_eq!(bad(&pay), Err(MessageError::NonPositiveMsats));
    pay["msats"] = serde_json::json!(-5);
    assert_eq!(bad(&pay), Err(MessageError::OutOfRange(F::Msats)));

    let mut error = Message::notification(
        None,
        NotificationKind::Error {
            error_msg: "x".into(),
            error_code: None,
        },
    )
    .to_json_value();
    error["error_code"] = serde_json::json!(70_000);
    assert_eq!(bad(&error), Err(MessageError::OutOfRange(F::ErrorCode)));
    error["error_code"] = serde_json::json!(1.5);
    assert_eq!(bad(&error), Err(MessageError::WrongType(F::ErrorCode)));
    // A code this library does not name survives the round trip.
    error["error_code"] = serde_json::json!(999);
    match bad(&error).expect("decodes").body {
        Body::Notification(n) => assert_eq!(
            n.kind,
            NotificationKind::Error {
                error_msg: "x".into(),
                error_code: Some(ErrorCode(999))
            }
        ),
        other => panic!("{other:?}"),
    }
}
