//! An authenticated-encryption layer for moip peers, beyond the reference.
//!
//! v0 encrypts with AES-256-CBC under a key derived from the beacon's seed alone. That gives no
//! integrity (a relay can flip bits and the peer decodes garbage or, worse, valid JSON), no
//! replay protection and no forward secrecy (the reference's shortcomings B1, M8, S3). Between
//! two moip peers this layer replaces it:
//!
//! 1. Each side sends a *hello*: its role, a fresh ephemeral secp256k1 key, and an HMAC of both
//!    under a key derived from the shared seed. Only a holder of the seed can make one, so the
//!    relay cannot put its own key between the two peers.
//! 2. Each side derives two directional keys with HKDF-SHA256 from the ECDH secret, salted with
//!    the seed: both the seed and the ephemeral secrets are needed, and a seed that leaks later
//!    does not open recorded sessions.
//! 3. Every frame is `MAGIC ‖ counter (u64, big-endian) ‖ ChaCha20-Poly1305(key, nonce from
//!    the counter, associated data MAGIC ‖ counter)`. The receiver accepts only the next
//!    counter: a replayed, dropped or reordered frame is refused, and so is any changed byte.
//!
//! Pure: bytes in, bytes out. The transport decides when to use it (see the crate docs).

use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use bitcoin::secp256k1::ecdh::SharedSecret;
use bitcoin::secp256k1::{rand, PublicKey, Secp256k1, SecretKey};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::SharedSeed;

/// Every frame of this layer starts with these bytes, which no v0 frame can (a clear v0 frame
/// is JSON, an encrypted one starts with a random IV — and is never 71 bytes of this shape).
pub const MAGIC: [u8; 4] = *b"MSA1";

const HELLO_TYPE: u8 = 0x00;
const DATA_TYPE: u8 = 0x01;
const HELLO_LEN: usize = MAGIC.len() + 1 + 1 + 33 + 32;
const HEADER_LEN: usize = MAGIC.len() + 1 + 8;
const TAG_LEN: usize = 16;

/// The most plaintext one frame carries (a v0 message is at most 64 KiB).
pub const MAX_PLAINTEXT: usize = 64 * 1024;

/// Which end of the connection we are; the two directions use different keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The app.
    Consumer,
    /// The wallet.
    Provider,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Consumer => 1,
            Role::Provider => 2,
        }
    }
}

/// Why a frame of this layer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    /// The bytes do not start with [`MAGIC`] and the expected frame type.
    #[error("not a frame of the authenticated layer")]
    NotSecure,
    /// Shorter than its header says.
    #[error("truncated frame")]
    Truncated,
    /// More than [`MAX_PLAINTEXT`] bytes.
    #[error("frame too long")]
    TooLong,
    /// The peer claims our own role.
    #[error("the peer claims our role")]
    SameRole,
    /// The hello's public key is not a valid point.
    #[error("invalid ephemeral key")]
    BadKey,
    /// The hello's MAC is wrong: the sender does not hold the beacon's seed.
    #[error("the hello is not from a holder of the shared seed")]
    NotASeedHolder,
    /// A counter other than the next one: a replay, a drop or a reordering.
    #[error("frame {got} where frame {expected} was due (replayed, dropped or reordered)")]
    OutOfOrder {
        /// The counter due.
        expected: u64,
        /// The counter received.
        got: u64,
    },
    /// The authentication tag does not match: a changed byte, or the wrong key.
    #[error("the frame was tampered with")]
    Tampered,
    /// 2^64 frames in one direction.
    #[error("the session has used all its counters")]
    Exhausted,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(key);
    for part in parts {
        engine.input(part);
    }
    hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
}

fn tagged(label: &[u8], seed: &SharedSeed) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(label);
    engine.input(seed.as_bytes());
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// The first half of a handshake: our ephemeral key, until the peer's hello arrives.
pub struct Handshake {
    role: Role,
    seed: SharedSeed,
    secret: SecretKey,
}

impl Handshake {
    /// Starts a handshake; returns it and the hello frame to send.
    pub fn start(seed: SharedSeed, role: Role) -> (Handshake, Vec<u8>) {
        let secp = Secp256k1::new();
        let secret = SecretKey::new(&mut rand::thread_rng());
        let public = PublicKey::from_secret_key(&secp, &secret);
        let hello = hello_frame(&seed, role, &public);
        (Handshake { role, seed, secret }, hello)
    }

    /// Checks the peer's hello and derives the session.
    ///
    /// # Errors
    /// [`SecureError`] for a frame that is not a hello, from the same role, with an invalid key
    /// or a MAC that only a seed holder could have made.
    pub fn finish(self, peer_hello: &[u8]) -> Result<Session, SecureError> {
        if peer_hello.len() < MAGIC.len() + 1
            || peer_hello[..MAGIC.len()] != MAGIC
            || peer_hello[MAGIC.len()] != HELLO_TYPE
        {
            return Err(SecureError::NotSecure);
        }
        if peer_hello.len() != HELLO_LEN {
            return Err(SecureError::Truncated);
        }
        let role = peer_hello[MAGIC.len() + 1];
        if role == self.role.byte() || !(1..=2).contains(&role) {
            return Err(SecureError::SameRole);
        }
        let key_bytes = &peer_hello[MAGIC.len() + 2..MAGIC.len() + 2 + 33];
        let mac = &peer_hello[MAGIC.len() + 2 + 33..];
        let expected = hello_mac(&self.seed, role, key_bytes);
        // Constant time: the MAC is the seed holder's proof.
        let differs = expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 {
            return Err(SecureError::NotASeedHolder);
        }
        let peer = PublicKey::from_slice(key_bytes).map_err(|_| SecureError::BadKey)?;
        let ecdh = SharedSecret::new(&peer, &self.secret);
        let salt = tagged(b"moip moneysocket auth v1", &self.seed);
        let prk = hmac_sha256(&salt, &[&ecdh.secret_bytes()]);
        let c2p = hmac_sha256(&prk, &[b"consumer to provider", &[1]]);
        let p2c = hmac_sha256(&prk, &[b"provider to consumer", &[1]]);
        let (send, recv) = match self.role {
            Role::Consumer => (c2p, p2c),
            Role::Provider => (p2c, c2p),
        };
        Ok(Session {
            send: ChaCha20Poly1305::new(Key::from_slice(&send)),
            recv: ChaCha20Poly1305::new(Key::from_slice(&recv)),
            sent: 0,
            received: 0,
        })
    }
}

fn hello_mac(seed: &SharedSeed, role: u8, key: &[u8]) -> [u8; 32] {
    let mac_key = tagged(b"moip moneysocket auth v1 hello", seed);
    hmac_sha256(&mac_key, &[&[role], key])
}

fn hello_frame(seed: &SharedSeed, role: Role, public: &PublicKey) -> Vec<u8> {
    let key = public.serialize();
    let mut frame = Vec::with_capacity(HELLO_LEN);
    frame.extend_from_slice(&MAGIC);
    frame.push(HELLO_TYPE);
    frame.push(role.byte());
    frame.extend_from_slice(&key);
    frame.extend_from_slice(&hello_mac(seed, role.byte(), &key));
    frame
}

/// An established session: seals what we send, opens what we receive, in order.
pub struct Session {
    send: ChaCha20Poly1305,
    recv: ChaCha20Poly1305,
    sent: u64,
    received: u64,
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

impl Session {
    /// Seals `plaintext` as the next frame.
    ///
    /// # Errors
    /// [`SecureError::TooLong`] over [`MAX_PLAINTEXT`]; [`SecureError::Exhausted`] after 2^64
    /// frames.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SecureError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(SecureError::TooLong);
        }
        let counter = self.sent;
        self.sent = counter.checked_add(1).ok_or(SecureError::Exhausted)?;
        let mut frame = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        frame.extend_from_slice(&MAGIC);
        frame.push(DATA_TYPE);
        frame.extend_from_slice(&counter.to_be_bytes());
        let sealed = self
            .send
            .encrypt(
                Nonce::from_slice(&nonce(counter)),
                Payload {
                    msg: plaintext,
                    aad: &frame,
                },
            )
            .map_err(|_| SecureError::TooLong)?;
        frame.extend_from_slice(&sealed);
        Ok(frame)
    }

    /// Opens the next frame from the peer.
    ///
    /// # Errors
    /// [`SecureError::NotSecure`], [`SecureError::Truncated`], [`SecureError::TooLong`],
    /// [`SecureError::OutOfOrder`] for any counter but the next, [`SecureError::Tampered`] when
    /// the tag does not match. A refused frame leaves the session as it was.
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, SecureError> {
        if frame.len() < MAGIC.len() + 1
            || frame[..MAGIC.len()] != MAGIC
            || frame[MAGIC.len()] != DATA_TYPE
        {
            return Err(SecureError::NotSecure);
        }
        if frame.len() < HEADER_LEN + TAG_LEN {
            return Err(SecureError::Truncated);
        }
        if frame.len() > HEADER_LEN + MAX_PLAINTEXT + TAG_LEN {
            return Err(SecureError::TooLong);
        }
        let mut counter_bytes = [0u8; 8];
        counter_bytes.copy_from_slice(&frame[MAGIC.len() + 1..HEADER_LEN]);
        let counter = u64::from_be_bytes(counter_bytes);
        if counter != self.received {
            return Err(SecureError::OutOfOrder {
                expected: self.received,
                got: counter,
            });
        }
        let plaintext = self
            .recv
            .decrypt(
                Nonce::from_slice(&nonce(counter)),
                Payload {
                    msg: &frame[HEADER_LEN..],
                    aad: &frame[..HEADER_LEN],
                },
            )
            .map_err(|_| SecureError::Tampered)?;
        self.received = self.received.checked_add(1).ok_or(SecureError::Exhausted)?;
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(seed: SharedSeed) -> (Session, Session) {
        let (consumer, hello_c) = Handshake::start(seed, Role::Consumer);
        let (provider, hello_p) = Handshake::start(seed, Role::Provider);
        (
            consumer.finish(&hello_p).expect("consumer"),
            provider.finish(&hello_c).expect("provider"),
        )
    }

    #[test]
    fn both_directions_round_trip_in_order() {
        let (mut c, mut p) = pair(SharedSeed::from_bytes([3; 16]));
        for i in 0..5u8 {
            let frame = c.seal(&[i; 40]).expect("seal");
            assert_eq!(p.open(&frame).expect("open"), vec![i; 40]);
            let back = p.seal(b"pong").expect("seal");
            assert_eq!(c.open(&back).expect("open"), b"pong");
        }
        // Same plaintext, different frames: the counter changes the nonce.
        assert_ne!(c.seal(b"x").expect("seal"), c.seal(b"x").expect("seal"));
    }

    #[test]
    fn tampered_replayed_reordered_and_reflected_frames_are_refused() {
        let (mut c, mut p) = pair(SharedSeed::from_bytes([4; 16]));
        let first = c.seal(b"first").expect("seal");
        let second = c.seal(b"second").expect("seal");

        // Any changed byte — header or body — fails, and the session is unchanged.
        for i in [MAGIC.len() + 8, HEADER_LEN, first.len() - 1] {
            let mut bad = first.clone();
            bad[i] ^= 0x01;
            let err = p.open(&bad).expect_err("tampered");
            assert!(
                matches!(err, SecureError::Tampered | SecureError::OutOfOrder { .. }),
                "{err:?}"
            );
        }
        assert_eq!(
            p.open(&second),
            Err(SecureError::OutOfOrder {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(p.open(&first).expect("in order"), b"first");
        assert_eq!(
            p.open(&first),
            Err(SecureError::OutOfOrder {
                expected: 1,
                got: 0
            })
        );
        assert_eq!(p.open(&second).expect("in order"), b"second");
        // A frame sent back at its sender does not open, even with the counter it expects:
        // each direction has its own key.
        let (_, mut fresh) = pair(SharedSeed::from_bytes([4; 16]));
        let reflected = fresh.seal(b"to consumer").expect("seal");
        assert_eq!(fresh.open(&reflected), Err(SecureError::Tampered));
        assert_eq!(p.open(b"{\"json\":1}"), Err(SecureError::NotSecure));
        assert_eq!(p.open(&first[..10]), Err(SecureError::Truncated));
    }

    #[test]
    fn only_seed_holders_complete_the_handshake() {
        let seed = SharedSeed::from_bytes([5; 16]);
        let (provider, _) = Handshake::start(seed, Role::Provider);
        // A relay that does not know the seed makes its own hello.
        let (_, forged) = Handshake::start(SharedSeed::from_bytes([6; 16]), Role::Consumer);
        assert_eq!(
            provider.finish(&forged).err(),
            Some(SecureError::NotASeedHolder)
        );
        let (provider, own) = Handshake::start(seed, Role::Provider);
        assert_eq!(provider.finish(&own).err(), Some(SecureError::SameRole));
        let (provider, _) = Handshake::start(seed, Role::Provider);
        assert_eq!(
            provider.finish(&[0u8; 71]).err(),
            Some(SecureError::NotSecure)
        );
        // Sessions of different handshakes on one seed do not read each other.
        let (mut c1, _) = pair(seed);
        let (_, mut p2) = pair(seed);
        let frame = c1.seal(b"hello").expect("seal");
        assert_eq!(p2.open(&frame), Err(SecureError::Tampered));
    }
}
