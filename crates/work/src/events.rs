//! The Work protocol's Nostr events: what each message looks like on a relay, and the checks
//! every incoming one passes before anything acts on it.
//!
//! Project kinds (NIP-90's task → claim → result shape, without its deprecated kinds):
//!
//! | kind | message | tags | content |
//! |--|--|--|--|
//! | 30910 (addressable) | task posted | `d` = task id | JSON: category, geohash, evidence required, reward, deadline |
//! | 3911 | claim | `task` | — |
//! | 3912 | withdraw | `task` | — |
//! | 3913 | proof of completion | `task` | JSON evidence: content hashes, time, geohash |
//! | 3914 | attestation | `task`, `p` = worker, NIP-32 `L`/`l` | — |
//! | 3915 | dispute | `task` | — |
//! | 3916 | panel vote | `task` | `worker` or `employer` |
//! | 3917 | verifier certification (the subject becomes a verifier with two) | `p` = subject | — |
//! | 3918 | a verifier vouches for someone met in person (a trust edge, no role) | `p` = subject | — |
//!
//! Every Work event names its community in an `h` tag (as NIP-29 groups do), so one relay can
//! carry many communities and a service subscribes to its own. Two standard kinds feed the trust
//! graph from anywhere: NIP-02 follow lists (kind 3, `p` tags; a new list replaces the old) and
//! NIP-56 reports (kind 1984, `p` = the reported key).
//!
//! [`decode`] verifies the event's id and BIP-340 signature, then its kind, tags and content,
//! with a typed [`EventError`] for each way it can be wrong; a message is attributed to the
//! event's author, never to anything inside it.

use nostr_sdk::{
    Event, EventBuilder, Keys, Kind, PublicKey, Tag, TagKind, Timestamp, UnsignedEvent,
};
use serde::{Deserialize, Serialize};

use crate::task::Evidence;
use crate::AccountId;

/// Task definitions (addressable: a re-post with the same `d` replaces it on relays).
pub const KIND_TASK: u16 = 30_910;
/// A worker claims a task.
pub const KIND_CLAIM: u16 = 3_911;
/// A worker gives a task up, or its employer withdraws it.
pub const KIND_WITHDRAW: u16 = 3_912;
/// Proof of completion.
pub const KIND_SUBMIT: u16 = 3_913;
/// An attestation of a submission.
pub const KIND_ATTEST: u16 = 3_914;
/// A challenge to an attested task.
pub const KIND_DISPUTE: u16 = 3_915;
/// A panel member's vote.
pub const KIND_VOTE: u16 = 3_916;
/// A verifier certifies someone as a physical verifier.
pub const KIND_CERTIFY: u16 = 3_917;
/// A verifier vouches for someone it met in person.
pub const KIND_VOUCH: u16 = 3_918;

/// NIP-02 follow list.
pub const KIND_FOLLOWS: u16 = 3;
/// NIP-56 report.
pub const KIND_REPORT: u16 = 1_984;

/// Most follows read from one list; the rest are ignored (a list is a trust signal, not a
/// resource an author may make us spend without bound).
pub const MAX_FOLLOWS: usize = 5_000;

/// Longest community id, in bytes.
pub const MAX_COMMUNITY_ID: usize = 64;

/// NIP-32 namespace of attestation labels.
pub const LABEL_NAMESPACE: &str = "org.moip.work";

/// Largest content accepted, in bytes.
pub const MAX_CONTENT: usize = 16 * 1024;

/// What a task event carries besides its id and author.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskBody {
    /// What kind of work.
    pub category: String,
    /// Where, as a geohash.
    pub geohash: String,
    /// Evidence the proof must include.
    pub evidence_required: Vec<String>,
    /// Tokens paid.
    pub reward: u64,
    /// Proof due by (Unix seconds).
    pub deadline: u64,
}

/// A Work protocol message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A task posted by its employer (the author).
    Post {
        /// The task id.
        task: String,
        /// The rest.
        body: TaskBody,
    },
    /// The author claims a task.
    Claim {
        /// The task.
        task: String,
    },
    /// The author withdraws.
    Withdraw {
        /// The task.
        task: String,
    },
    /// The author submits proof.
    Submit {
        /// The task.
        task: String,
        /// The proof.
        evidence: Evidence,
    },
    /// The author attests `worker`'s submission.
    Attest {
        /// The task.
        task: String,
        /// Whose work.
        worker: AccountId,
    },
    /// The author challenges the task's quorum.
    Dispute {
        /// The task.
        task: String,
    },
    /// The author, on the panel, votes.
    Vote {
        /// The task.
        task: String,
        /// Whether the worker should be paid.
        worker_won: bool,
    },
    /// The author, a verifier, certifies `subject` as a physical verifier.
    Certify {
        /// Who.
        subject: AccountId,
    },
    /// The author, a verifier, vouches for `subject` (met in person): a strong trust edge.
    Vouch {
        /// Who.
        subject: AccountId,
    },
    /// The author's follow list (NIP-02), replacing the one before.
    Follows {
        /// Whom it follows.
        subjects: Vec<AccountId>,
    },
    /// The author reports `subject` (NIP-56).
    Report {
        /// Whom.
        subject: AccountId,
    },
}

/// A verified message and who signed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Signed {
    /// The author (the event's key).
    pub author: AccountId,
    /// The event id.
    pub event_id: [u8; 32],
    /// When the author says it was made (Unix seconds).
    pub created_at: u64,
    /// The community a Work event is for; `None` for follows and reports, which count anywhere.
    pub community: Option<String>,
    /// What it says.
    pub message: Message,
}

/// Why an event is not a valid Work message; the reason goes back to its sender.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The id does not hash the event, or the signature does not verify.
    #[error("the event's id or signature is invalid")]
    BadSignature,
    /// Not a Work protocol kind.
    #[error("kind {0} is not a Work protocol message")]
    UnknownKind(u16),
    /// A required tag is missing or malformed.
    #[error("the {0:?} tag is missing or malformed")]
    Tag(&'static str),
    /// The content is not what the kind carries.
    #[error("bad content: {0}")]
    Content(String),
    /// The content is larger than [`MAX_CONTENT`].
    #[error("the content is larger than {MAX_CONTENT} bytes")]
    TooLarge,
    /// Signing failed (our own events).
    #[error("could not sign: {0}")]
    Sign(String),
}

/// The `h` tag naming a Work event's community.
pub fn community_tag(community: &str) -> Tag {
    Tag::custom(TagKind::h(), [community])
}

fn task_tag(task: &str) -> Tag {
    Tag::custom(TagKind::custom("task"), [task])
}

/// The first value of the first `name` tag.
pub fn first_value<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event.tags.iter().find_map(|tag| {
        let parts = tag.as_slice();
        (parts.first().map(String::as_str) == Some(name))
            .then(|| parts.get(1).map(String::as_str))
            .flatten()
    })
}

fn task_of(event: &Event, name: &'static str) -> Result<String, EventError> {
    match first_value(event, name) {
        Some(task) if !task.is_empty() && task.len() <= 96 => Ok(task.to_owned()),
        _ => Err(EventError::Tag(name)),
    }
}

fn account(pk: &PublicKey) -> AccountId {
    AccountId::from_bytes(pk.to_bytes())
}

fn key_of(event: &Event, name: &'static str) -> Result<AccountId, EventError> {
    let hex = first_value(event, name).ok_or(EventError::Tag(name))?;
    let pk = PublicKey::from_hex(hex).map_err(|_| EventError::Tag(name))?;
    Ok(account(&pk))
}

fn key_tag(who: &AccountId) -> Result<Tag, EventError> {
    PublicKey::from_slice(who.as_bytes())
        .map(Tag::public_key)
        .map_err(|e| EventError::Content(e.to_string()))
}

/// Signs `message` as `keys` for `community`, stamped `created_at`.
///
/// # Errors
/// [`EventError::Sign`] if signing fails; [`EventError::Content`] for a subject that is no key.
pub fn encode(
    keys: &Keys,
    community: &str,
    message: &Message,
    created_at: u64,
) -> Result<Event, EventError> {
    builder(community, message, created_at)?
        .sign_with_keys(keys)
        .map_err(|e| EventError::Sign(e.to_string()))
}

/// `message` by `author` for `community`, unsigned: what a signer the node does not hold (a
/// NIP-07 browser extension) is asked to sign.
///
/// # Errors
/// [`EventError::Content`] for a subject that is no key.
pub fn unsigned(
    author: PublicKey,
    community: &str,
    message: &Message,
    created_at: u64,
) -> Result<UnsignedEvent, EventError> {
    Ok(builder(community, message, created_at)?.build(author))
}

/// The event of `message`, before it is signed.
fn builder(
    community: &str,
    message: &Message,
    created_at: u64,
) -> Result<EventBuilder, EventError> {
    let (kind, content, mut tags): (u16, String, Vec<Tag>) = match message {
        Message::Post { task, body } => {
            (KIND_TASK, json(body), vec![Tag::identifier(task.clone())])
        }
        Message::Claim { task } => (KIND_CLAIM, String::new(), vec![task_tag(task)]),
        Message::Withdraw { task } => (KIND_WITHDRAW, String::new(), vec![task_tag(task)]),
        Message::Submit { task, evidence } => (KIND_SUBMIT, json(evidence), vec![task_tag(task)]),
        Message::Attest { task, worker } => {
            let worker = PublicKey::from_slice(worker.as_bytes())
                .map_err(|e| EventError::Content(e.to_string()))?;
            (
                KIND_ATTEST,
                String::new(),
                vec![
                    task_tag(task),
                    Tag::public_key(worker),
                    Tag::custom(TagKind::custom("L"), [LABEL_NAMESPACE]),
                    Tag::custom(TagKind::custom("l"), ["attested", LABEL_NAMESPACE]),
                ],
            )
        }
        Message::Dispute { task } => (KIND_DISPUTE, String::new(), vec![task_tag(task)]),
        Message::Vote { task, worker_won } => (
            KIND_VOTE,
            if *worker_won { "worker" } else { "employer" }.to_owned(),
            vec![task_tag(task)],
        ),
        Message::Certify { subject } | Message::Vouch { subject } => {
            let kind = if matches!(message, Message::Certify { .. }) {
                KIND_CERTIFY
            } else {
                KIND_VOUCH
            };
            (kind, String::new(), vec![key_tag(subject)?])
        }
        Message::Follows { subjects } => (
            KIND_FOLLOWS,
            String::new(),
            subjects.iter().map(key_tag).collect::<Result<_, _>>()?,
        ),
        Message::Report { subject } => (
            KIND_REPORT,
            String::new(),
            vec![Tag::custom(
                TagKind::p(),
                [subject.to_string(), "other".to_owned()],
            )],
        ),
    };
    if !matches!(kind, KIND_FOLLOWS | KIND_REPORT) {
        tags.push(community_tag(community));
    }
    Ok(EventBuilder::new(Kind::from(kind), content)
        .tags(tags)
        .custom_created_at(Timestamp::from(created_at)))
}

/// Verifies and reads an event.
///
/// # Errors
/// [`EventError`] for a bad signature, an unknown kind, a missing tag or bad content.
pub fn decode(event: &Event) -> Result<Signed, EventError> {
    event.verify().map_err(|_| EventError::BadSignature)?;
    if event.content.len() > MAX_CONTENT {
        return Err(EventError::TooLarge);
    }
    fn content(what: &'static str) -> impl Fn(serde_json::Error) -> EventError {
        move |e| EventError::Content(format!("{what}: {e}"))
    }
    let kind = event.kind.as_u16();
    let message = match kind {
        KIND_TASK => Message::Post {
            task: task_of(event, "d")?,
            body: serde_json::from_str(&event.content).map_err(content("task"))?,
        },
        KIND_CLAIM => Message::Claim {
            task: task_of(event, "task")?,
        },
        KIND_WITHDRAW => Message::Withdraw {
            task: task_of(event, "task")?,
        },
        KIND_SUBMIT => Message::Submit {
            task: task_of(event, "task")?,
            evidence: serde_json::from_str(&event.content).map_err(content("evidence"))?,
        },
        KIND_ATTEST => Message::Attest {
            task: task_of(event, "task")?,
            worker: key_of(event, "p")?,
        },
        KIND_DISPUTE => Message::Dispute {
            task: task_of(event, "task")?,
        },
        KIND_VOTE => Message::Vote {
            task: task_of(event, "task")?,
            worker_won: match event.content.as_str() {
                "worker" => true,
                "employer" => false,
                other => {
                    return Err(EventError::Content(format!(
                        "a vote is \"worker\" or \"employer\", not {other:?}"
                    )))
                }
            },
        },
        KIND_CERTIFY => Message::Certify {
            subject: key_of(event, "p")?,
        },
        KIND_VOUCH => Message::Vouch {
            subject: key_of(event, "p")?,
        },
        KIND_FOLLOWS => Message::Follows {
            // Real lists carry stale or odd entries: keys that do not parse are skipped.
            subjects: event
                .tags
                .iter()
                .filter_map(|tag| match tag.as_slice() {
                    [name, key, ..] if name == "p" => PublicKey::from_hex(key).ok(),
                    _ => None,
                })
                .map(|pk| account(&pk))
                .take(MAX_FOLLOWS)
                .collect(),
        },
        KIND_REPORT => Message::Report {
            subject: key_of(event, "p")?,
        },
        other => return Err(EventError::UnknownKind(other)),
    };
    let community = match kind {
        KIND_FOLLOWS | KIND_REPORT => None,
        _ => match first_value(event, "h") {
            Some(h) if !h.is_empty() && h.len() <= MAX_COMMUNITY_ID => Some(h.to_owned()),
            _ => return Err(EventError::Tag("h")),
        },
    };
    Ok(Signed {
        author: account(&event.pubkey),
        event_id: event.id.to_bytes(),
        created_at: event.created_at.as_secs(),
        community,
        message,
    })
}

/// JSON for the content of our own events (plain data: serialising cannot fail).
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
