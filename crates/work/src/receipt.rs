//! What the Work service publishes: a receipt for every event it decides on, and trust scores.
//!
//! **Receipts** (kind 3919, signed by the community's service key) are the community's log. Each
//! carries a sequence number, the time the service applied the event, the event's id and author,
//! and the verdict — accepted, or rejected with the reason. The sender of a refused event reads
//! why from its receipt (`#e` = its event id); a node that lost its database replays the
//! accepted events in receipt order at receipt times and arrives at the same state, because the
//! state depends only on the events and the times they were applied. Payouts at the end of a
//! challenge window are receipts too (no event; the tasks paid).
//!
//! **Scores** are NIP-85 trusted assertions (kind 30382, addressable by `d` = the subject's key)
//! with `rank` = round(100 · score), so any client can read and check the community's scores.

use nostr_sdk::{Event, EventBuilder, EventId, Keys, Kind, PublicKey, Tag, TagKind, Timestamp};
use serde::{Deserialize, Serialize};

use crate::events::{community_tag, first_value, EventError};
use crate::AccountId;

/// A receipt.
pub const KIND_RECEIPT: u16 = 3_919;
/// A NIP-85 trusted assertion about a user.
pub const KIND_SCORE: u16 = 30_382;

/// What the service decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// Applied.
    Accepted,
    /// Applied; the task's attestation quorum is complete and its challenge window runs.
    QuorumReached,
    /// Applied; the panel decided.
    Resolved {
        /// Whether the worker was paid.
        worker_won: bool,
    },
    /// Refused; nothing changed.
    Rejected {
        /// Why, for a person.
        reason: String,
    },
    /// The receipt's rules version is in force from here on: written once, when a service
    /// starts on a log of older rules; open claims and panels got its windows from this time
    /// ([`crate::community::Community::adopt_rules`]).
    RulesAdopted,
    /// Challenge windows ended: these tasks' rewards were released to their workers.
    Paid {
        /// The tasks.
        tasks: Vec<String>,
    },
}

impl Verdict {
    /// Whether replaying the receipt changes the state.
    pub fn applies(&self) -> bool {
        !matches!(self, Verdict::Rejected { .. })
    }
}

/// One entry of the community's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When the service applied it (Unix seconds).
    pub at: u64,
    /// The event decided on; `None` for payouts.
    pub event: Option<[u8; 32]>,
    /// The event's author.
    pub author: Option<AccountId>,
    /// The decision.
    pub verdict: Verdict,
    /// The rules it was decided by ([`crate::task::RULES_VERSION`]; a replay judges its event
    /// by them). Receipts of version 1, written before versions were recorded, carry none
    /// (neither a `rules` tag nor the field in the local log): read as 1, written without it,
    /// so such a receipt signed again is the same event.
    #[serde(default = "first_rules", skip_serializing_if = "is_first_rules")]
    pub rules: u32,
}

fn first_rules() -> u32 {
    1
}

fn is_first_rules(version: &u32) -> bool {
    *version == 1
}

/// Signs `receipt` as the service of `community`.
///
/// # Errors
/// [`EventError::Sign`] if signing fails.
pub fn encode_receipt(
    keys: &Keys,
    community: &str,
    receipt: &Receipt,
) -> Result<Event, EventError> {
    let mut tags = vec![
        community_tag(community),
        Tag::custom(TagKind::custom("seq"), [receipt.seq.to_string()]),
    ];
    if let Some(id) = receipt.event {
        tags.push(Tag::event(EventId::from_byte_array(id)));
    }
    if let Some(author) = receipt.author {
        let pk = PublicKey::from_slice(author.as_bytes())
            .map_err(|e| EventError::Content(e.to_string()))?;
        tags.push(Tag::public_key(pk));
    }
    if !is_first_rules(&receipt.rules) {
        tags.push(Tag::custom(
            TagKind::custom("rules"),
            [receipt.rules.to_string()],
        ));
    }
    let content =
        serde_json::to_string(&receipt.verdict).map_err(|e| EventError::Content(e.to_string()))?;
    EventBuilder::new(Kind::from(KIND_RECEIPT), content)
        .tags(tags)
        .custom_created_at(Timestamp::from(receipt.at))
        .sign_with_keys(keys)
        .map_err(|e| EventError::Sign(e.to_string()))
}

/// Reads a receipt, checking it is signed by `service` for `community`.
///
/// # Errors
/// [`EventError`] for a bad signature, another signer or community, or malformed tags.
pub fn decode_receipt(
    event: &Event,
    service: &PublicKey,
    community: &str,
) -> Result<Receipt, EventError> {
    event.verify().map_err(|_| EventError::BadSignature)?;
    if event.pubkey != *service {
        return Err(EventError::Content(
            "not signed by the community's service".into(),
        ));
    }
    if event.kind.as_u16() != KIND_RECEIPT {
        return Err(EventError::UnknownKind(event.kind.as_u16()));
    }
    if first_value(event, "h") != Some(community) {
        return Err(EventError::Tag("h"));
    }
    let seq = first_value(event, "seq")
        .and_then(|s| s.parse().ok())
        .ok_or(EventError::Tag("seq"))?;
    let event_id = match first_value(event, "e") {
        Some(hex) => Some(
            EventId::from_hex(hex)
                .map_err(|_| EventError::Tag("e"))?
                .to_bytes(),
        ),
        None => None,
    };
    let author = match first_value(event, "p") {
        Some(hex) => Some(AccountId::from_bytes(
            PublicKey::from_hex(hex)
                .map_err(|_| EventError::Tag("p"))?
                .to_bytes(),
        )),
        None => None,
    };
    let rules = match first_value(event, "rules") {
        Some(v) => v.parse().map_err(|_| EventError::Tag("rules"))?,
        None => first_rules(),
    };
    let verdict =
        serde_json::from_str(&event.content).map_err(|e| EventError::Content(e.to_string()))?;
    Ok(Receipt {
        seq,
        at: event.created_at.as_secs(),
        event: event_id,
        author,
        verdict,
        rules,
    })
}

/// The rank (0–100) published for a score (0–1).
pub fn rank(score: f64) -> u8 {
    // Clamped to 0..=100 first, so the cast cannot truncate.
    (score.clamp(0.0, 1.0) * 100.0).round() as u8
}

/// Signs a NIP-85 assertion of `subject`'s rank in `community`.
///
/// # Errors
/// [`EventError::Sign`] if signing fails.
pub fn encode_score(
    keys: &Keys,
    community: &str,
    subject: &AccountId,
    rank: u8,
    at: u64,
) -> Result<Event, EventError> {
    EventBuilder::new(Kind::from(KIND_SCORE), "")
        .tags([
            Tag::identifier(subject.to_string()),
            Tag::custom(TagKind::custom("rank"), [rank.to_string()]),
            community_tag(community),
        ])
        .custom_created_at(Timestamp::from(at))
        .sign_with_keys(keys)
        .map_err(|e| EventError::Sign(e.to_string()))
}

/// Reads a NIP-85 assertion: the subject and its rank.
///
/// # Errors
/// [`EventError`] for a bad signature, another kind, or a missing or malformed `d` or `rank`.
pub fn decode_score(event: &Event) -> Result<(AccountId, u8), EventError> {
    event.verify().map_err(|_| EventError::BadSignature)?;
    if event.kind.as_u16() != KIND_SCORE {
        return Err(EventError::UnknownKind(event.kind.as_u16()));
    }
    let subject = first_value(event, "d")
        .and_then(|d| d.parse::<AccountId>().ok())
        .ok_or(EventError::Tag("d"))?;
    let rank = first_value(event, "rank")
        .and_then(|r| r.parse::<u8>().ok())
        .filter(|r| *r <= 100)
        .ok_or(EventError::Tag("rank"))?;
    Ok((subject, rank))
}
