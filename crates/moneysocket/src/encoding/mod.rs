//! Wire primitives: BigSize integers, TLV streams, bech32 text and the JSON text form the
//! reference implementations emit. Everything here is pure: bytes in, values or typed errors out.

pub mod bech32;
pub mod bigsize;
pub(crate) mod hex;
pub mod json;
pub mod tlv;
