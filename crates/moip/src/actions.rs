//! What a member does, as the dashboard's forms (and `POST /api/prepare`) describe it: a flat
//! map of text fields, read here into the Nostr event the member signs — a Work event, or a
//! redemption request.
//!
//! Every field a person types is checked here with a message that person understands: the
//! forms show the message next to the form, the API returns it in `{"error": …}`.

use std::collections::HashMap;

use bitcoin::hashes::{sha256, Hash as _};
use moip_assets::ledger::AccountId;
use moip_work::community::Community;
use moip_work::events::{community_tag, first_value, Message, TaskBody};
use moip_work::task::Evidence;
use nostr_sdk::{Event, EventBuilder, Kind, Timestamp};
use serde::{Deserialize, Serialize};

/// A request to redeem tokens, signed by their holder (`h` = the community).
pub const KIND_REDEEM: u16 = 3_920;

/// How far a redemption request's `created_at` may be from the node's clock, in seconds.
pub const REDEEM_FRESHNESS_SECS: u64 = 600;

/// Longest task id a form may give.
const MAX_TASK_ID: usize = 96;

/// Longest text field read.
const MAX_FIELD: usize = 4_096;

/// Why a form or request cannot become an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// A field is missing or malformed; the message names it.
    #[error("{0}")]
    Field(String),
    /// The task does not exist.
    #[error("there is no task {0:?}")]
    UnknownTask(String),
    /// No such action.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    /// A redemption request that is not one.
    #[error("{0}")]
    Redeem(String),
}

fn field(e: impl Into<String>) -> ActionError {
    ActionError::Field(e.into())
}

/// What an action becomes.
#[derive(Clone, Debug, PartialEq)]
pub enum Prepared {
    /// A Work event.
    Work(Message),
    /// A redemption of `amount` tokens paid to `invoice`.
    Redeem {
        /// Tokens.
        amount: u64,
        /// A BOLT11 invoice for the amount after the fee.
        invoice: String,
    },
}

/// The content of a redemption request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemRequest {
    /// Tokens to redeem.
    pub amount: u64,
    /// Where to pay: a BOLT11 invoice for `amount` less the fee.
    pub invoice: String,
}

/// The fields of a form.
pub type Fields = HashMap<String, String>;

fn text<'a>(fields: &'a Fields, name: &str) -> Result<&'a str, ActionError> {
    let value = fields.get(name).map(|v| v.trim()).unwrap_or_default();
    if value.is_empty() {
        return Err(field(format!("{name} is required")));
    }
    if value.len() > MAX_FIELD {
        return Err(field(format!("{name} is too long")));
    }
    Ok(value)
}

/// A positive whole number of tokens or sats, as a person types it (`50000`, `50 000`,
/// `50_000`).
///
/// # Errors
/// [`ActionError::Field`] naming the field.
pub fn amount(fields: &Fields, name: &str) -> Result<u64, ActionError> {
    let raw = text(fields, name)?;
    let digits: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | ','))
        .collect();
    match digits.parse::<u64>() {
        Ok(0) => Err(field(format!("{name} must be more than 0"))),
        Ok(n) => Ok(n),
        Err(_) => Err(field(format!("{name} must be a whole number, not {raw:?}"))),
    }
}

/// A Nostr public key: 64 hex digits or `npub1…`.
///
/// # Errors
/// [`ActionError::Field`] naming the field.
pub fn key(fields: &Fields, name: &str) -> Result<AccountId, ActionError> {
    let raw = text(fields, name)?;
    parse_key(raw).ok_or_else(|| {
        field(format!(
            "{name} must be a Nostr public key (64 hex digits or npub1…)"
        ))
    })
}

/// `text` as a key: 64 hex digits or `npub1…`.
pub fn parse_key(text: &str) -> Option<AccountId> {
    if let Ok(account) = text.parse::<AccountId>() {
        return Some(account);
    }
    use nostr_sdk::FromBech32;
    let public = nostr_sdk::PublicKey::from_bech32(text).ok()?;
    Some(AccountId::from_bytes(public.to_bytes()))
}

fn task_id<L: moip_assets::ledger::TokenLedger>(
    fields: &Fields,
    community: &Community<L>,
) -> Result<String, ActionError> {
    let id = text(fields, "task")?;
    if community.task(id).is_none() {
        return Err(ActionError::UnknownTask(id.to_owned()));
    }
    Ok(id.to_owned())
}

/// Reads the action named by the `action` field, against the community as it stands (a task
/// must exist; a submission must cover what the task requires).
///
/// # Errors
/// [`ActionError`] with the reason, for a person.
pub fn prepare<L: moip_assets::ledger::TokenLedger>(
    fields: &Fields,
    community: &Community<L>,
    now: u64,
) -> Result<Prepared, ActionError> {
    let action = text(fields, "action")?;
    let message = match action {
        "post" => {
            let task = text(fields, "task")?;
            if task.len() > MAX_TASK_ID || task.chars().any(char::is_control) {
                return Err(field("task: 1 to 96 characters, no control characters"));
            }
            if community.task(task).is_some() {
                return Err(field(format!("a task {task:?} exists already")));
            }
            let hours = amount(fields, "hours")?;
            if hours > 24 * 365 {
                return Err(field("hours: at most a year"));
            }
            let evidence_required = text(fields, "evidence")?
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>();
            let geohash = text(fields, "geohash")?.to_ascii_lowercase();
            if !moip_work::task::is_geohash(&geohash) {
                return Err(field(format!(
                    "geohash: {geohash:?} is not a geohash (e.g. u33dc0)"
                )));
            }
            Message::Post {
                task: task.to_owned(),
                body: TaskBody {
                    category: text(fields, "category")?.to_owned(),
                    geohash,
                    evidence_required,
                    reward: amount(fields, "reward")?,
                    deadline: now + hours * 3_600,
                },
            }
        }
        "claim" => Message::Claim {
            task: task_id(fields, community)?,
        },
        "withdraw" => Message::Withdraw {
            task: task_id(fields, community)?,
        },
        "submit" => {
            let task = task_id(fields, community)?;
            let spec = &community
                .task(&task)
                .ok_or_else(|| ActionError::UnknownTask(task.clone()))?
                .spec;
            let mut items = Vec::new();
            for name in &spec.evidence_required {
                let given = text(fields, &format!("evidence.{name}"))?;
                items.push((name.clone(), content_hash(given)));
            }
            let geohash = fields
                .get("geohash")
                .map(|g| g.trim().to_ascii_lowercase())
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| spec.geohash.clone());
            Message::Submit {
                task,
                evidence: Evidence {
                    items,
                    time: now,
                    geohash,
                },
            }
        }
        "attest" => Message::Attest {
            task: task_id(fields, community)?,
            worker: key(fields, "worker")?,
        },
        "dispute" => Message::Dispute {
            task: task_id(fields, community)?,
        },
        "vote" => Message::Vote {
            task: task_id(fields, community)?,
            worker_won: match text(fields, "side")? {
                "worker" => true,
                "employer" => false,
                other => {
                    return Err(field(format!(
                        "side: \"worker\" or \"employer\", not {other:?}"
                    )))
                }
            },
        },
        "certify" => Message::Certify {
            subject: key(fields, "subject")?,
        },
        "vouch" => Message::Vouch {
            subject: key(fields, "subject")?,
        },
        "redeem" => {
            let invoice = text(fields, "invoice")?;
            return Ok(Prepared::Redeem {
                amount: amount(fields, "amount")?,
                invoice: invoice
                    .strip_prefix("lightning:")
                    .unwrap_or(invoice)
                    .to_owned(),
            });
        }
        other => return Err(ActionError::UnknownAction(other.to_owned())),
    };
    Ok(Prepared::Work(message))
}

/// The evidence as a content hash: 64 hex digits are taken as the hash already; anything else
/// (a description, a link) is hashed, so only its hash goes on the relays.
fn content_hash(given: &str) -> String {
    if given.len() == 64 && given.bytes().all(|b| b.is_ascii_hexdigit()) {
        given.to_ascii_lowercase()
    } else {
        sha256::Hash::hash(given.as_bytes()).to_string()
    }
}

/// The unsigned redemption request.
pub fn redeem_builder(community: &str, request: &RedeemRequest, created_at: u64) -> EventBuilder {
    EventBuilder::new(
        Kind::from(KIND_REDEEM),
        serde_json::to_string(request).unwrap_or_default(),
    )
    .tags([community_tag(community)])
    .custom_created_at(Timestamp::from(created_at))
}

/// Reads a signed redemption request for `community`, checking its signature and freshness.
///
/// # Errors
/// [`ActionError::Redeem`] with the reason.
pub fn decode_redeem(
    event: &Event,
    community: &str,
    now: u64,
) -> Result<(AccountId, RedeemRequest), ActionError> {
    let bad = |why: &str| ActionError::Redeem(why.to_owned());
    if event.kind != Kind::from(KIND_REDEEM) {
        return Err(bad("a redemption request is an event of kind 3920"));
    }
    if event.verify().is_err() {
        return Err(bad("the signature does not verify"));
    }
    if first_value(event, "h") != Some(community) {
        return Err(bad("the request is for another community"));
    }
    let at = event.created_at.as_secs();
    if at.abs_diff(now) > REDEEM_FRESHNESS_SECS {
        return Err(bad(
            "the request is too old or from the future: sign it again now",
        ));
    }
    let request: RedeemRequest = serde_json::from_str(&event.content)
        .map_err(|e| ActionError::Redeem(format!("the content is not a request: {e}")))?;
    Ok((AccountId::from_bytes(event.pubkey.to_bytes()), request))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr_sdk::Keys;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn amounts_read_as_people_write_them_and_refuse_the_rest() {
        assert_eq!(amount(&fields(&[("n", "50 000")]), "n"), Ok(50_000));
        assert_eq!(amount(&fields(&[("n", "1_000")]), "n"), Ok(1_000));
        for bad in ["", "0", "-5", "1.5", "ten", "99999999999999999999999"] {
            let e = amount(&fields(&[("n", bad)]), "n").expect_err(bad);
            assert!(e.to_string().starts_with("n "), "{e}");
        }
    }

    #[test]
    fn keys_read_from_hex_or_npub() {
        let keys = Keys::generate();
        let hex = keys.public_key().to_hex();
        let npub = nostr_sdk::ToBech32::to_bech32(&keys.public_key()).expect("npub");
        assert_eq!(parse_key(&hex), parse_key(&npub));
        assert!(parse_key(&hex).is_some());
        assert!(parse_key("npub1nope").is_none());
    }

    #[test]
    fn evidence_is_hashed_unless_it_is_a_hash() {
        let hash = "AB".repeat(32);
        assert_eq!(content_hash(&hash), "ab".repeat(32));
        assert_eq!(content_hash("a photo of the oven").len(), 64);
        assert_ne!(content_hash("a photo of the oven"), "a photo of the oven");
    }

    #[test]
    fn redemption_requests_are_checked() {
        let keys = Keys::generate();
        let request = RedeemRequest {
            amount: 5_000,
            invoice: "lnbcrt1".into(),
        };
        let now = 1_700_000_000;
        let signed = |community: &str, at: u64| {
            redeem_builder(community, &request, at)
                .sign_with_keys(&keys)
                .expect("sign")
        };
        let (who, got) = decode_redeem(&signed("bakery", now), "bakery", now).expect("valid");
        assert_eq!(who, AccountId::from_bytes(keys.public_key().to_bytes()));
        assert_eq!(got, request);
        assert!(decode_redeem(&signed("mill", now), "bakery", now).is_err());
        assert!(decode_redeem(&signed("bakery", now - 3_600), "bakery", now).is_err());
    }
}
