//! The envelopes of NIP-47: which encryption a request uses, opening it, and sealing replies
//! and notifications into signed events. Pure functions of keys, events and text.
//!
//! A request names its encryption in an `encryption` tag (`nip44_v2`); a request without the
//! tag comes from a legacy client and uses NIP-04. The reply goes back the same way. Anything
//! else gets `UNSUPPORTED_ENCRYPTION`.

use nostr_sdk::nips::{nip04, nip44};
use nostr_sdk::{Event, EventBuilder, EventId, Keys, Kind, PublicKey, Tag, TagKind};
use thiserror::Error;

/// NIP-47 notifications encrypted with NIP-44 (23196 is the NIP-04 kind).
pub const NOTIFICATION_NIP44_KIND: u16 = 23197;

/// Requests carry a command and a few strings; an invoice list in a request is not a thing.
pub const MAX_REQUEST_CONTENT: usize = 64 * 1024;

/// The encryption of one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// NIP-44 v2: ChaCha20 with HMAC-SHA256, padded.
    Nip44,
    /// NIP-04: AES-256-CBC without authentication (legacy clients).
    Nip04,
}

/// Why a request event could not be opened.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not a request, or not addressed to this service.
    #[error("not a wallet connect request for this service")]
    NotForUs,
    /// Its `expiration` tag has passed: NIP-47 says to drop it.
    #[error("the request has expired")]
    Expired,
    /// Larger than any request needs to be.
    #[error("the request is {0} bytes; at most {MAX_REQUEST_CONTENT} are accepted")]
    TooLarge(usize),
    /// An encryption the service does not speak.
    #[error("unsupported encryption {0:?}")]
    UnsupportedEncryption(String),
    /// The content does not decrypt with the shared key.
    #[error("cannot decrypt the request: {0}")]
    Decrypt(String),
    /// A reply could not be encrypted or signed.
    #[error("cannot seal the reply: {0}")]
    Seal(String),
}

/// The encryption a request asks for.
///
/// # Errors
/// [`EnvelopeError::UnsupportedEncryption`] for a value other than `nip44_v2` or `nip04`.
pub fn encryption_of(event: &Event) -> Result<Encryption, EnvelopeError> {
    let tag = event
        .tags
        .iter()
        .map(Tag::as_slice)
        .find(|t| t.first().map(String::as_str) == Some("encryption"));
    match tag.and_then(|t| t.get(1)).map(String::as_str) {
        None => Ok(Encryption::Nip04),
        Some(value) => match value.trim() {
            "nip44_v2" => Ok(Encryption::Nip44),
            "nip04" => Ok(Encryption::Nip04),
            other => Err(EnvelopeError::UnsupportedEncryption(other.to_string())),
        },
    }
}

/// Checks a request event is for `service` and opens it: its encryption and plaintext.
/// The signature was checked by the relay pool when the event arrived.
///
/// # Errors
/// [`EnvelopeError`] for an event that is not ours, expired, too large, in an unknown
/// encryption, or that does not decrypt.
pub fn open_request(service: &Keys, event: &Event) -> Result<(Encryption, String), EnvelopeError> {
    if event.kind != Kind::WalletConnectRequest
        || !event
            .tags
            .public_keys()
            .any(|pk| *pk == service.public_key())
    {
        return Err(EnvelopeError::NotForUs);
    }
    if event.is_expired() {
        return Err(EnvelopeError::Expired);
    }
    if event.content.len() > MAX_REQUEST_CONTENT {
        return Err(EnvelopeError::TooLarge(event.content.len()));
    }
    let encryption = encryption_of(event)?;
    let plaintext = decrypt(service, &event.pubkey, encryption, &event.content)?;
    Ok((encryption, plaintext))
}

/// Decrypts `content` from `peer`.
///
/// # Errors
/// [`EnvelopeError::Decrypt`] when it does not decrypt (wrong key, forged MAC, garbage).
pub fn decrypt(
    keys: &Keys,
    peer: &PublicKey,
    encryption: Encryption,
    content: &str,
) -> Result<String, EnvelopeError> {
    let secret = keys.secret_key();
    let failed = |e: String| EnvelopeError::Decrypt(e);
    match encryption {
        Encryption::Nip44 => {
            nip44::decrypt(secret, peer, content).map_err(|e| failed(e.to_string()))
        }
        Encryption::Nip04 => {
            nip04::decrypt(secret, peer, content).map_err(|e| failed(e.to_string()))
        }
    }
}

/// Encrypts `plaintext` for `peer` and signs it as an event of `kind`, with a `p` tag for the
/// peer, an `e` tag for the request answered (if any) and, for NIP-44, the `encryption` tag.
///
/// # Errors
/// [`EnvelopeError::Seal`] when encryption or signing fails.
pub fn seal(
    keys: &Keys,
    peer: &PublicKey,
    encryption: Encryption,
    kind: Kind,
    plaintext: &str,
    answering: Option<EventId>,
) -> Result<Event, EnvelopeError> {
    seal_tagged(keys, peer, encryption, kind, plaintext, answering, None)
}

/// [`seal`], with a `d` tag when given: NIP-47 answers each item of a `multi_` request in its
/// own event, told apart by a `d` tag with the item's id.
///
/// # Errors
/// [`EnvelopeError::Seal`] when encryption or signing fails.
pub fn seal_tagged(
    keys: &Keys,
    peer: &PublicKey,
    encryption: Encryption,
    kind: Kind,
    plaintext: &str,
    answering: Option<EventId>,
    d: Option<&str>,
) -> Result<Event, EnvelopeError> {
    let secret = keys.secret_key();
    let seal_err = |e: String| EnvelopeError::Seal(e);
    let content = match encryption {
        Encryption::Nip44 => nip44::encrypt(secret, peer, plaintext, nip44::Version::V2)
            .map_err(|e| seal_err(e.to_string()))?,
        Encryption::Nip04 => {
            nip04::encrypt(secret, peer, plaintext).map_err(|e| seal_err(e.to_string()))?
        }
    };
    let mut tags = vec![Tag::public_key(*peer)];
    if let Some(id) = answering {
        tags.push(Tag::event(id));
    }
    if encryption == Encryption::Nip44 {
        tags.push(Tag::custom(TagKind::custom("encryption"), ["nip44_v2"]));
    }
    if let Some(d) = d {
        tags.push(Tag::identifier(d));
    }
    EventBuilder::new(kind, content)
        .tags(tags)
        .sign_with_keys(keys)
        .map_err(|e| seal_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(client: &Keys, service: &Keys, encryption: Option<&str>, text: &str) -> Event {
        let content = match encryption {
            Some("nip44_v2") => nip44::encrypt(
                client.secret_key(),
                &service.public_key(),
                text,
                nip44::Version::V2,
            )
            .expect("encrypt"),
            _ => nip04::encrypt(client.secret_key(), &service.public_key(), text).expect("enc"),
        };
        let mut tags = vec![Tag::public_key(service.public_key())];
        if let Some(e) = encryption {
            tags.push(Tag::custom(TagKind::custom("encryption"), [e]));
        }
        EventBuilder::new(Kind::WalletConnectRequest, content)
            .tags(tags)
            .sign_with_keys(client)
            .expect("sign")
    }

    #[test]
    fn both_encryptions_open_and_round_trip() {
        let (client, service) = (Keys::generate(), Keys::generate());
        for (tag, expected) in [
            (Some("nip44_v2"), Encryption::Nip44),
            (Some("nip04"), Encryption::Nip04),
            (None, Encryption::Nip04),
        ] {
            let event = request(&client, &service, tag, "{\"method\":\"get_info\"}");
            let (encryption, text) = open_request(&service, &event).expect("open");
            assert_eq!(encryption, expected);
            assert_eq!(text, "{\"method\":\"get_info\"}");
            let reply = seal(
                &service,
                &client.public_key(),
                encryption,
                Kind::WalletConnectResponse,
                "ok",
                Some(event.id),
            )
            .expect("seal");
            let back = decrypt(&client, &service.public_key(), encryption, &reply.content);
            assert_eq!(back.as_deref(), Ok("ok"));
        }
    }

    #[test]
    fn foreign_tampered_and_unknown_requests_are_refused() {
        let (client, service, other) = (Keys::generate(), Keys::generate(), Keys::generate());
        let event = request(&client, &service, Some("nip44_v2"), "hi");
        assert_eq!(open_request(&other, &event), Err(EnvelopeError::NotForUs));

        let odd = request(&client, &service, Some("rot13"), "hi");
        assert_eq!(
            open_request(&service, &odd),
            Err(EnvelopeError::UnsupportedEncryption("rot13".into()))
        );

        // Flip one character of the NIP-44 payload: the MAC no longer matches.
        let mut content: Vec<char> = event.content.chars().collect();
        let i = content.len() / 2;
        content[i] = if content[i] == 'A' { 'B' } else { 'A' };
        let tampered: String = content.into_iter().collect();
        assert!(matches!(
            decrypt(&service, &client.public_key(), Encryption::Nip44, &tampered),
            Err(EnvelopeError::Decrypt(_))
        ));
        assert!(matches!(
            decrypt(&service, &client.public_key(), Encryption::Nip04, "garbage"),
            Err(EnvelopeError::Decrypt(_))
        ));
    }
}
