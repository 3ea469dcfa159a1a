//! The Work protocol's Nostr events: every message survives signing and decoding, attributed to
//! its signer; tampered, unsigned-by-author, unknown, malformed and oversized events get a typed
//! error.

use moip_work::events::{decode, encode, EventError, Message, TaskBody, KIND_CLAIM, MAX_CONTENT};
use moip_work::task::Evidence;
use moip_work::AccountId;
use nostr_sdk::{Event, EventBuilder, JsonUtil, Keys, Kind, Tag, TagKind, Timestamp};

fn account(keys: &Keys) -> AccountId {
    AccountId::from_bytes(keys.public_key().to_bytes())
}

#[test]
fn every_message_round_trips_and_names_its_signer() {
    let (employer, worker) = (Keys::generate(), Keys::generate());
    let messages = vec![
        Message::Post {
            task: "paint-the-hall".into(),
            body: TaskBody {
                category: "painting".into(),
                geohash: "u33dc0".into(),
                evidence_required: vec!["photo-after".into()],
                reward: 5_000,
                deadline: 1_900_000_000,
            },
        },
        Message::Claim {
            task: "paint-the-hall".into(),
        },
        Message::Withdraw {
            task: "paint-the-hall".into(),
        },
        Message::Submit {
            task: "paint-the-hall".into(),
            evidence: Evidence {
                items: vec![("photo-after".into(), "ab".repeat(32))],
                time: 1_800_000_000,
                geohash: "u33dc0".into(),
            },
        },
        Message::Attest {
            task: "paint-the-hall".into(),
            worker: account(&worker),
        },
        Message::Dispute {
            task: "paint-the-hall".into(),
        },
        Message::Vote {
            task: "paint-the-hall".into(),
            worker_won: false,
        },
        Message::Certify {
            subject: account(&worker),
        },
        Message::Vouch {
            subject: account(&worker),
        },
        Message::Follows {
            subjects: vec![account(&worker), account(&Keys::generate())],
        },
        Message::Report {
            subject: account(&worker),
        },
    ];
    for message in messages {
        let event = encode(&employer, "bakery", &message, 1_800_000_123).expect("sign");
        let signed = decode(&event).expect("decode");
        assert_eq!(signed.message, message);
        // Work events name their community; follows and reports count anywhere.
        let global = matches!(message, Message::Follows { .. } | Message::Report { .. });
        assert_eq!(signed.community.is_none(), global);
        if !global {
            assert_eq!(signed.community.as_deref(), Some("bakery"));
        }
        assert_eq!(signed.author, account(&employer));
        assert_eq!(signed.created_at, 1_800_000_123);
        assert_eq!(signed.event_id, event.id.to_bytes());
        // Through JSON, as a relay hands it over.
        let relayed = Event::from_json(event.as_json()).expect("json");
        assert_eq!(decode(&relayed).expect("decode").message, message);
    }
}

#[test]
fn bad_events_get_typed_errors() {
    let keys = Keys::generate();
    let claim = encode(
        &keys,
        "bakery",
        &Message::Claim { task: "t".into() },
        1_800_000_000,
    )
    .expect("sign");

    // Tampered after signing: the content, or the author swapped for someone else.
    let mut json: serde_json::Value = serde_json::from_str(&claim.as_json()).expect("json");
    json["content"] = serde_json::json!("changed");
    let tampered = Event::from_json(json.to_string()).expect("parse");
    assert_eq!(decode(&tampered), Err(EventError::BadSignature));
    let mut json: serde_json::Value = serde_json::from_str(&claim.as_json()).expect("json");
    json["pubkey"] = serde_json::json!(Keys::generate().public_key().to_hex());
    let forged = Event::from_json(json.to_string()).expect("parse");
    assert_eq!(decode(&forged), Err(EventError::BadSignature));

    let sign = |kind: u16, content: &str, tags: Vec<Tag>| {
        EventBuilder::new(Kind::from(kind), content)
            .tags(tags)
            .custom_created_at(Timestamp::from(1_800_000_000))
            .sign_with_keys(&keys)
            .expect("sign")
    };
    assert_eq!(
        decode(&sign(1, "hello", vec![])),
        Err(EventError::UnknownKind(1))
    );
    assert_eq!(
        decode(&sign(KIND_CLAIM, "", vec![])),
        Err(EventError::Tag("task"))
    );
    let long_task = Tag::custom(TagKind::custom("task"), ["x".repeat(200)]);
    assert_eq!(
        decode(&sign(KIND_CLAIM, "", vec![long_task])),
        Err(EventError::Tag("task"))
    );
    let h = || Tag::custom(TagKind::h(), ["bakery"]);
    // A Work event without its community, or with an empty one.
    let bare_task = Tag::custom(TagKind::custom("task"), ["t"]);
    assert_eq!(
        decode(&sign(KIND_CLAIM, "", vec![bare_task.clone()])),
        Err(EventError::Tag("h"))
    );
    assert_eq!(
        decode(&sign(
            KIND_CLAIM,
            "",
            vec![bare_task, Tag::custom(TagKind::h(), [""])]
        )),
        Err(EventError::Tag("h"))
    );
    // A follow list's unreadable entries are skipped; a report needs its subject.
    let friend = Keys::generate();
    let follows = sign(
        moip_work::events::KIND_FOLLOWS,
        "",
        vec![
            Tag::custom(TagKind::p(), ["junk"]),
            Tag::public_key(friend.public_key()),
        ],
    );
    assert_eq!(
        decode(&follows).map(|s| s.message),
        Ok(Message::Follows {
            subjects: vec![account(&friend)]
        })
    );
    assert_eq!(
        decode(&sign(moip_work::events::KIND_REPORT, "", vec![])),
        Err(EventError::Tag("p"))
    );
    let task = || Tag::custom(TagKind::custom("task"), ["t"]);
    assert!(matches!(
        decode(&sign(
            moip_work::events::KIND_SUBMIT,
            "{not json",
            vec![task()]
        )),
        Err(EventError::Content(_))
    ));
    assert!(matches!(
        decode(&sign(moip_work::events::KIND_VOTE, "maybe", vec![task()])),
        Err(EventError::Content(_))
    ));
    assert_eq!(
        decode(&sign(moip_work::events::KIND_ATTEST, "", vec![task()])),
        Err(EventError::Tag("p"))
    );
    let bad_p = Tag::custom(TagKind::custom("p"), ["not-a-key"]);
    assert_eq!(
        decode(&sign(moip_work::events::KIND_CERTIFY, "", vec![bad_p])),
        Err(EventError::Tag("p"))
    );
    assert_eq!(
        decode(&sign(
            KIND_CLAIM,
            &"x".repeat(MAX_CONTENT + 1),
            vec![task(), h()]
        )),
        Err(EventError::TooLarge)
    );
}
