//! v0 wire framing: one message per WebSocket binary frame, in the clear or AES-256-CBC
//! encrypted under the shared seed's key.
//!
//! What deployed apps do (py-moneysocket `message/codec.py`, js-moneysocket
//! `message/codec.js`):
//!
//! - A frame carries no header and no length prefix: its payload is either the message's
//!   UTF-8 JSON, or `IV (16 random bytes) ‖ AES-256-CBC(json ‖ zero padding)`.
//! - Padding is 1 to 16 zero bytes (a full block when the JSON already fills whole blocks),
//!   not PKCS#7: the references strip trailing zeros and would keep PKCS#7 bytes, so emitting
//!   anything else breaks interop. JSON always ends in a non-zero byte, so stripping is exact.
//! - A frame is *clear* exactly when it is UTF-8 that parses as JSON; anything else is taken
//!   for ciphertext. Rendezvous messages must arrive clear (the relay holds no key and must
//!   read them), every other message must arrive encrypted; a message in the wrong class is
//!   refused.
//!
//! There is no MAC: a relay or anyone on the path can flip ciphertext bits undetected, and
//! the only check after decryption is that the plaintext is a valid message. That is the v0
//! protocol's weakness (shortcoming B1), not something a framing layer can repair without
//! breaking interop.
//!
//! Everything here is pure: bytes in, typed values or [`FrameError`] out, never a panic, and
//! every size is bounded before anything is allocated from it.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::RngCore;

use crate::seed::AesKey;
use crate::v0::message::{Message, MessageError, MAX_MESSAGE_LEN};

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// AES block and IV size in bytes.
pub const BLOCK_LEN: usize = 16;

/// Largest frame payload accepted, in bytes: the largest message ([`MAX_MESSAGE_LEN`]) once
/// encrypted, i.e. plus the IV and a full block of padding. Checked before decrypting or
/// parsing, so a peer cannot make us allocate more than this per frame.
pub const MAX_FRAME_LEN: usize = MAX_MESSAGE_LEN + 2 * BLOCK_LEN;

/// The smallest well-formed ciphertext: an IV and one block.
const MIN_CIPHERTEXT_LEN: usize = 2 * BLOCK_LEN;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame (or the message to encode) is larger than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Size of the frame, or of the encoded message.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is clear JSON but not a valid v0 message.
    #[error("clear frame is not a valid message: {0}")]
    Clear(MessageError),
    /// The frame is not clear, and this end holds no key to decrypt it (a relay, or a socket
    /// before it knows its seed).
    #[error("encrypted frame but no key to decrypt it")]
    NoKey,
    /// The frame is not clear and cannot be ciphertext: it is shorter than an IV and one
    /// block, or not a whole number of blocks.
    #[error("frame of {len} bytes is neither json nor iv plus whole aes blocks")]
    BadCiphertextLength {
        /// Size of the frame.
        len: usize,
    },
    /// The frame decrypted, but the plaintext is not a valid message: a wrong key, a tampered
    /// frame, or a peer speaking something else. Without a MAC these cannot be told apart.
    #[error("decrypted frame is not a valid message: {0}")]
    Decrypted(MessageError),
    /// A message that must travel encrypted arrived in the clear.
    #[error("{name} must be encrypted but arrived in the clear")]
    MustBeEncrypted {
        /// The message name.
        name: &'static str,
    },
    /// A rendezvous message arrived encrypted; the relay could not have read it.
    #[error("{name} must travel in the clear but arrived encrypted")]
    MustBeClear {
        /// The message name.
        name: &'static str,
    },
}

/// How a frame travels, decided by its content alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    /// UTF-8 JSON.
    Clear,
    /// Anything else, taken for `IV ‖ ciphertext`.
    Encrypted,
}

/// Classifies a frame by the references' rule: clear if and only if it is UTF-8 JSON.
///
/// Does not bound the size; callers that take frames from the wire check
/// [`MAX_FRAME_LEN`] first ([`decode_frame`] does).
pub fn classify(frame: &[u8]) -> FrameClass {
    // `from_slice` rejects invalid UTF-8 itself; `IgnoredAny` parses without building a tree.
    if serde_json::from_slice::<serde::de::IgnoredAny>(frame).is_ok() {
        FrameClass::Clear
    } else {
        FrameClass::Encrypted
    }
}

/// Encodes `message` as a frame: clear for rendezvous messages, otherwise encrypted under
/// `key` with a fresh random IV.
///
/// # Errors
///
/// [`FrameError::TooLong`] if the message is larger than [`MAX_MESSAGE_LEN`], which every
/// receiver following this crate would refuse.
pub fn encode_frame(message: &Message, key: &AesKey) -> Result<Vec<u8>, FrameError> {
    let mut iv = [0u8; BLOCK_LEN];
    rand::rng().fill_bytes(&mut iv);
    encode_frame_with_iv(message, key, &iv)
}

/// [`encode_frame`] with a caller-chosen IV, for reproducible tests and vectors.
///
/// An IV must never repeat under one key; outside tests use [`encode_frame`].
///
/// # Errors
///
/// As [`encode_frame`].
pub fn encode_frame_with_iv(
    message: &Message,
    key: &AesKey,
    iv: &[u8; BLOCK_LEN],
) -> Result<Vec<u8>, FrameError> {
    let json = message.encode();
    if json.len() > MAX_MESSAGE_LEN {
        return Err(FrameError::TooLong {
            len: json.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    if message.requires_cleartext() {
        Ok(json)
    } else {
        Ok(encrypt_with_iv(key, iv, &json))
    }
}

/// Encodes a rendezvous message, which needs no key.
///
/// # Errors
///
/// [`FrameError::MustBeEncrypted`] if `message` is not a rendezvous message;
/// [`FrameError::TooLong`] as [`encode_frame`].
pub fn encode_clear_frame(message: &Message) -> Result<Vec<u8>, FrameError> {
    if !message.requires_cleartext() {
        return Err(FrameError::MustBeEncrypted {
            name: message.name(),
        });
    }
    let json = message.encode();
    if json.len() > MAX_MESSAGE_LEN {
        return Err(FrameError::TooLong {
            len: json.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok(json)
}

/// Decodes a frame received from the wire.
///
/// `key` is `None` on ends that hold no seed (the relay); those can read only clear frames
/// and get [`FrameError::NoKey`] for the rest.
///
/// # Errors
///
/// Every [`FrameError`] but `NoKey` means the frame is malformed or in the wrong class; the
/// size is checked first.
pub fn decode_frame(frame: &[u8], key: Option<&AesKey>) -> Result<Message, FrameError> {
    if frame.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong {
            len: frame.len(),
            max: MAX_FRAME_LEN,
        });
    }
    match classify(frame) {
        FrameClass::Clear => {
            let message = Message::decode(frame).map_err(FrameError::Clear)?;
            if message.requires_cleartext() {
                Ok(message)
            } else {
                Err(FrameError::MustBeEncrypted {
                    name: message.name(),
                })
            }
        }
        FrameClass::Encrypted => {
            // Check the shape before asking for a key, so garbage reads as garbage everywhere.
            check_ciphertext_len(frame.len())?;
            let key = key.ok_or(FrameError::NoKey)?;
            let plain = decrypt(key, frame)?;
            let message = Message::decode(&plain).map_err(FrameError::Decrypted)?;
            if message.requires_cleartext() {
                Err(FrameError::MustBeClear {
                    name: message.name(),
                })
            } else {
                Ok(message)
            }
        }
    }
}

/// Encrypts `plaintext` the v0 way: `iv ‖ AES-256-CBC(plaintext ‖ 1..=16 zero bytes)`.
///
/// Exposed for layers that carry raw bytes (`send_bin` in the references) and for vectors;
/// message-level callers use [`encode_frame`].
pub fn encrypt_with_iv(key: &AesKey, iv: &[u8; BLOCK_LEN], plaintext: &[u8]) -> Vec<u8> {
    // Always at least one byte of padding, as the references write it.
    let padded_len = (plaintext.len() / BLOCK_LEN + 1) * BLOCK_LEN;
    let mut padded = Vec::with_capacity(padded_len);
    padded.extend_from_slice(plaintext);
    padded.resize(padded_len, 0);
    let ciphertext = Aes256CbcEnc::new(key.as_bytes().into(), iv.into())
        .encrypt_padded_vec_mut::<NoPadding>(&padded);
    let mut frame = Vec::with_capacity(BLOCK_LEN + ciphertext.len());
    frame.extend_from_slice(iv);
    frame.extend_from_slice(&ciphertext);
    frame
}

/// Decrypts a v0 ciphertext frame and strips the trailing zero padding.
///
/// # Errors
///
/// [`FrameError::TooLong`] above [`MAX_FRAME_LEN`]; [`FrameError::BadCiphertextLength`] if
/// the frame is not an IV plus whole blocks.
pub fn decrypt(key: &AesKey, frame: &[u8]) -> Result<Vec<u8>, FrameError> {
    if frame.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong {
            len: frame.len(),
            max: MAX_FRAME_LEN,
        });
    }
    check_ciphertext_len(frame.len())?;
    let (iv, ciphertext) = frame.split_at(BLOCK_LEN);
    let mut plain = Aes256CbcDec::new(key.as_bytes().into(), iv.into())
        .decrypt_padded_vec_mut::<NoPadding>(ciphertext)
        // Unreachable after the length check: NoPadding only fails on partial blocks.
        .map_err(|_| FrameError::BadCiphertextLength { len: frame.len() })?;
    let end = plain.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    plain.truncate(end);
    Ok(plain)
}

fn check_ciphertext_len(len: usize) -> Result<(), FrameError> {
    if len < MIN_CIPHERTEXT_LEN || len % BLOCK_LEN != 0 {
        Err(FrameError::BadCiphertextLength { len })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use super::*;
    use crate::seed::SharedSeed;
    use crate::timestamp::Timestamp;
    use crate::v0::message::{Body, Notification, NotificationKind, Request, RequestKind};
    use crate::v0::seed::{derive_aes_key, derive_rendezvous_id};
    use crate::Uuid;

    fn seed() -> SharedSeed {
        SharedSeed::from_bytes(*b"hello from light")
    }

    fn request(kind: RequestKind) -> Message {
        Message::new(
            Timestamp::from_unix_secs(1_600_000_000),
            Body::Request(Request {
                request_uuid: Uuid::from_u128(0xa5b3_2936_3143_4856_bdea_7b3d_da7a_a5e8),
                kind,
            }),
        )
    }

    fn rendezvous() -> Message {
        request(RequestKind::Rendezvous {
            rendezvous_id: derive_rendezvous_id(&seed()),
        })
    }

    fn hex(s: &str) -> Vec<u8> {
        crate::encoding::hex::decode_vec(s).expect("test hex")
    }

    /// The digest's derived vector (seed "hello from light", IV 00..0f, `{"a": 1}`), also
    /// checked against `openssl enc -aes-256-cbc -nopad`.
    #[test]
    fn encrypts_the_reference_vector() {
        let key = derive_aes_key(&seed());
        let iv: [u8; 16] = core::array::from_fn(|i| i as u8);
        let frame = encrypt_with_iv(&key, &iv, br#"{"a": 1}"#);
        assert_eq!(
            frame,
            hex("000102030405060708090a0b0c0d0e0f2afde6999b7bcac8e61dd6ce765361bd")
        );
        assert_eq!(decrypt(&key, &frame), Ok(br#"{"a": 1}"#.to_vec()));
    }

    #[test]
    fn padding_is_one_to_sixteen_zero_bytes() {
        let key = derive_aes_key(&seed());
        for len in 0..40 {
            let plain = vec![b'x'; len];
            let frame = encrypt_with_iv(&key, &[7; 16], &plain);
            assert_eq!(frame.len(), 16 + (len / 16 + 1) * 16, "len {len}");
            assert_eq!(decrypt(&key, &frame), Ok(plain));
        }
    }

    #[test]
    fn round_trips_both_classes() {
        let key = derive_aes_key(&seed());
        let clear = rendezvous();
        let frame = encode_frame(&clear, &key).expect("encode");
        assert_eq!(classify(&frame), FrameClass::Clear);
        assert_eq!(frame, clear.encode());
        assert_eq!(decode_frame(&frame, None), Ok(clear.clone()));
        assert_eq!(decode_frame(&frame, Some(&key)), Ok(clear));

        let secret = request(RequestKind::Invoice {
            msats: NonZeroU64::new(1234).expect("non-zero"),
            description: None,
        });
        let frame = encode_frame(&secret, &key).expect("encode");
        assert_eq!(classify(&frame), FrameClass::Encrypted);
        assert_eq!(decode_frame(&frame, Some(&key)), Ok(secret.clone()));
        assert_eq!(decode_frame(&frame, None), Err(FrameError::NoKey));
        // A fresh IV each time: equal messages give different frames.
        assert_ne!(encode_frame(&secret, &key).expect("encode"), frame);
    }

    #[test]
    fn refuses_messages_in_the_wrong_class() {
        let key = derive_aes_key(&seed());
        let ping = request(RequestKind::Ping);
        assert_eq!(
            decode_frame(&ping.encode(), Some(&key)),
            Err(FrameError::MustBeEncrypted {
                name: "REQUEST_PING"
            })
        );
        let end = Message::new(
            Timestamp::from_unix_secs(1),
            Body::Notification(Notification {
                notification_uuid: Uuid::from_u128(1),
                request_reference_uuid: None,
                kind: NotificationKind::RendezvousEnd {
                    rendezvous_id: derive_rendezvous_id(&seed()),
                },
            }),
        );
        let sealed = encrypt_with_iv(&key, &[1; 16], &end.encode());
        assert_eq!(
            decode_frame(&sealed, Some(&key)),
            Err(FrameError::MustBeClear {
                name: "NOTIFY_RENDEZVOUS_END"
            })
        );
        assert_eq!(
            encode_clear_frame(&ping),
            Err(FrameError::MustBeEncrypted {
                name: "REQUEST_PING"
            })
        );
        assert_eq!(encode_clear_frame(&end), Ok(end.encode()));
    }

    #[test]
    fn garbage_gets_typed_errors() {
        let key = derive_aes_key(&seed());
        struct Case {
            name: &'static str,
            frame: Vec<u8>,
            want: fn(&FrameError) -> bool,
        }
        let cases = [
            Case {
                name: "empty",
                frame: vec![],
                want: |e| matches!(e, FrameError::BadCiphertextLength { len: 0 }),
            },
            Case {
                name: "broken json",
                frame: b"{not json".to_vec(),
                want: |e| matches!(e, FrameError::BadCiphertextLength { len: 9 }),
            },
            Case {
                name: "json but not a message",
                frame: br#"{"foo": 1}"#.to_vec(),
                want: |e| matches!(e, FrameError::Clear(MessageError::Missing(_))),
            },
            Case {
                name: "json array",
                frame: b"[1,2]".to_vec(),
                want: |e| matches!(e, FrameError::Clear(MessageError::NotObject)),
            },
            Case {
                name: "one block only",
                frame: vec![0xab; 16],
                want: |e| matches!(e, FrameError::BadCiphertextLength { len: 16 }),
            },
            Case {
                name: "partial block",
                frame: vec![0xab; 33],
                want: |e| matches!(e, FrameError::BadCiphertextLength { len: 33 }),
            },
            Case {
                name: "random blocks",
                frame: (0..64u8).map(|b| b.wrapping_mul(37) | 0x80).collect(),
                want: |e| matches!(e, FrameError::Decrypted(_)),
            },
            Case {
                name: "all zero ciphertext",
                frame: vec![0; 48],
                want: |e| matches!(e, FrameError::Decrypted(_)),
            },
            Case {
                name: "oversize",
                frame: vec![b' '; MAX_FRAME_LEN + 1],
                want: |e| matches!(e, FrameError::TooLong { .. }),
            },
        ];
        for case in cases {
            let got = decode_frame(&case.frame, Some(&key));
            match got {
                Err(ref e) if (case.want)(e) => {}
                other => panic!("{}: unexpected {other:?}", case.name),
            }
        }
    }

    #[test]
    fn wrong_key_is_a_typed_error() {
        let key = derive_aes_key(&seed());
        let other = derive_aes_key(&SharedSeed::from_bytes([9; 16]));
        let frame = encode_frame(&request(RequestKind::Ping), &key).expect("encode");
        assert!(matches!(
            decode_frame(&frame, Some(&other)),
            Err(FrameError::Decrypted(_))
        ));
    }

    #[test]
    fn oversize_message_is_not_encoded() {
        let key = derive_aes_key(&seed());
        let error = Message::new(
            Timestamp::from_unix_secs(1),
            Body::Notification(Notification {
                notification_uuid: Uuid::from_u128(1),
                request_reference_uuid: None,
                kind: NotificationKind::Error {
                    error_msg: "x".repeat(MAX_MESSAGE_LEN),
                    error_code: None,
                },
            }),
        );
        assert!(matches!(
            encode_frame(&error, &key),
            Err(FrameError::TooLong { .. })
        ));
    }

    proptest::proptest! {
        /// Any bytes at all decode to a message or a typed error, never a panic.
        #[test]
        fn arbitrary_frames_never_panic(frame in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let key = derive_aes_key(&seed());
            let _ = decode_frame(&frame, Some(&key));
            let _ = decode_frame(&frame, None);
        }

        /// Plaintext without trailing zeros (JSON never has them) survives encryption.
        #[test]
        fn encryption_round_trips(mut plain in proptest::collection::vec(proptest::num::u8::ANY, 0..200), iv in proptest::array::uniform16(proptest::num::u8::ANY)) {
            while plain.last() == Some(&0) {
                plain.pop();
            }
            let key = derive_aes_key(&seed());
            let frame = encrypt_with_iv(&key, &iv, &plain);
            proptest::prop_assert_eq!(decrypt(&key, &frame), Ok(plain));
        }
    }
}
