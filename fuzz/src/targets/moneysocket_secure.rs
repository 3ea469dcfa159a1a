//! The authenticated-encryption layer between moip peers, with a fixed seed: hellos and data
//! frames off the wire, and a session fed frames that are honest, tampered with (a byte the
//! fuzzer chooses, changed), replayed or raw. A refused frame must leave the session as it was,
//! and only the honest frame due next may open.

use moip_moneysocket::secure::{Handshake, Role, SecureError, MAX_PLAINTEXT};
use moip_moneysocket::SharedSeed;

/// One input of the `moneysocket_secure` target.
pub fn moneysocket_secure(data: &[u8]) {
    let seed = SharedSeed::from_bytes([0x5e; 16]);

    // Raw bytes as the peer's hello, for either role.
    for role in [Role::Consumer, Role::Provider] {
        let (handshake, _) = Handshake::start(seed, role);
        if handshake.finish(data).is_ok() {
            panic!("a hello nobody made with the seed was accepted");
        }
    }

    let (consumer, hello_c) = Handshake::start(seed, Role::Consumer);
    let (provider, hello_p) = Handshake::start(seed, Role::Provider);
    let mut sender = consumer.finish(&hello_p).expect("honest hello");
    let mut receiver = provider.finish(&hello_c).expect("honest hello");

    // Raw bytes as a data frame: nothing the fuzzer writes can carry a valid tag.
    assert!(receiver.open(data).is_err(), "a forged frame opened");

    // Then a script: each step is [op, position, xor, len] and `len` bytes of plaintext.
    let mut rest = data;
    let mut last: Option<Vec<u8>> = None;
    let mut steps = 0;
    while let [op, position, xor, len, tail @ ..] = rest {
        steps += 1;
        if steps > 64 {
            break;
        }
        let take = usize::from(*len).min(tail.len());
        let (plaintext, tail) = tail.split_at(take);
        rest = tail;
        match op % 4 {
            // Honest: opens, to the same bytes.
            0 => {
                let frame = sender.seal(plaintext).expect("short plaintext seals");
                assert_eq!(
                    receiver.open(&frame).as_deref(),
                    Ok(plaintext),
                    "honest frame"
                );
                last = Some(frame);
            }
            // One byte changed: refused, and the session still opens the frame itself.
            1 => {
                let frame = sender.seal(plaintext).expect("short plaintext seals");
                let mut bad = frame.clone();
                let i = usize::from(*position) % bad.len();
                bad[i] ^= xor.max(&1);
                assert!(receiver.open(&bad).is_err(), "tampered frame opened");
                assert_eq!(
                    receiver.open(&frame).as_deref(),
                    Ok(plaintext),
                    "after tampering"
                );
                last = Some(frame);
            }
            // A replay of the last frame.
            2 => {
                if let Some(frame) = &last {
                    assert!(
                        matches!(receiver.open(frame), Err(SecureError::OutOfOrder { .. })),
                        "replay opened"
                    );
                }
            }
            // Raw bytes, and an oversized plaintext.
            _ => {
                assert!(receiver.open(plaintext).is_err(), "raw bytes opened");
                if *xor == 0xff {
                    let big = vec![0u8; MAX_PLAINTEXT + 1];
                    assert_eq!(sender.seal(&big), Err(SecureError::TooLong));
                }
            }
        }
    }
}
