//! v0 beacons: `moneysocket1…` bech32 strings carrying a shared seed and locations.
//!
//! ```text
//! 65979 beacon {
//!     65981 shared_seed   = 16 bytes
//!     65985 location_list {
//!         65983 location_count = BigSize(n)        // first, inside the list
//!         n × location record (65987 WebSocket | 65989 WebRTC | 65991 Bluetooth | 65993 NFC)
//!     }
//! }
//! ```
//!
//! The types start at 2^16 + 443 and are all odd (BOLT #1 extension range). The decoder
//! follows py-moneysocket `beacon/beacon.py`: fixed record order, unknown location types
//! rejected. Where the reference silently ignores data (bytes after the beacon or the list,
//! locations beyond the count) we reject it, so one beacon has exactly one meaning.

use std::str::FromStr;

use crate::encoding::{bech32, bigsize, tlv};
use crate::error::{Bech32Error, BigSizeError, TlvError};
use crate::seed::{SharedSeed, SHARED_SEED_LEN};
use crate::v0::location::{Location, LocationError};

/// The only human-readable part v0 accepts.
pub const HRP: &str = "moneysocket";
/// First record type of the v0 namespace (2^16 + 443).
pub const TLV_TYPE_START: u64 = 65979;
/// Record type of the beacon itself.
pub const BEACON_TLV_TYPE: u64 = TLV_TYPE_START;
/// Record type of the shared seed.
pub const SHARED_SEED_TLV_TYPE: u64 = TLV_TYPE_START + 2;
/// Record type of the location count (inside the list).
pub const LOCATION_COUNT_TLV_TYPE: u64 = TLV_TYPE_START + 4;
/// Record type of the location list.
pub const LOCATION_LIST_TLV_TYPE: u64 = TLV_TYPE_START + 6;

/// A v0 beacon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    /// The secret both ends derive their key and rendezvous id from.
    pub shared_seed: SharedSeed,
    /// Where to connect. Apps use only the first one.
    pub locations: Vec<Location>,
}

/// A v0 beacon could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BeaconError {
    /// The text is not valid bech32.
    #[error("could not decode bech32 string: {0}")]
    Bech32(Bech32Error),
    /// The human-readable part is not exactly `moneysocket`.
    #[error("string is not a moneysocket beacon (hrp {0:?})")]
    UnknownHrp(String),
    /// A record is malformed.
    #[error("invalid record: {0}")]
    Tlv(TlvError),
    /// A record of another type stands where this one is required.
    #[error("expected record type {expected}, found {found}")]
    UnexpectedTlv {
        /// The type required at this position.
        expected: u64,
        /// The type present.
        found: u64,
    },
    /// The input ends where this record type is required.
    #[error("missing record type {0}")]
    MissingTlv(u64),
    /// Bytes follow the last record a beacon or list may contain.
    #[error("trailing bytes after record type {0}")]
    TrailingBytes(u64),
    /// The shared seed is not 16 bytes.
    #[error("shared seed has {0} bytes, expected 16")]
    SharedSeedLength(usize),
    /// The location count is not a valid BigSize.
    #[error("invalid location count: {0}")]
    LocationCount(BigSizeError),
    /// The list holds fewer locations than its count says.
    #[error("location list declares {declared} locations, holds {found}")]
    MissingLocations {
        /// The count record's value.
        declared: u64,
        /// Locations present.
        found: usize,
    },
    /// A location record has a type v0 does not define.
    #[error("unknown location type {0}")]
    UnknownLocationType(u64),
    /// A location record is malformed.
    #[error("invalid location: {0}")]
    Location(LocationError),
}

impl Beacon {
    /// A beacon with no locations.
    pub fn new(shared_seed: SharedSeed) -> Self {
        Beacon {
            shared_seed,
            locations: Vec::new(),
        }
    }

    /// The beacon record (the bytes that bech32 encoding wraps).
    pub fn encode_tlv(&self) -> Vec<u8> {
        let mut list = Vec::new();
        tlv::encode(
            LOCATION_COUNT_TLV_TYPE,
            &bigsize::to_vec(self.locations.len() as u64),
            &mut list,
        );
        for location in &self.locations {
            location.encode(&mut list);
        }
        let mut body = Vec::new();
        tlv::encode(SHARED_SEED_TLV_TYPE, self.shared_seed.as_bytes(), &mut body);
        tlv::encode(LOCATION_LIST_TLV_TYPE, &list, &mut body);
        tlv::to_vec(BEACON_TLV_TYPE, &body)
    }

    /// The beacon as a `moneysocket1…` string.
    ///
    /// # Errors
    ///
    /// [`Bech32Error::TooLong`] if the locations make it longer than the bech32 limit.
    pub fn to_bech32(&self) -> Result<String, Bech32Error> {
        bech32::encode(HRP, &self.encode_tlv())
    }

    /// Parses a beacon string (either case).
    ///
    /// # Errors
    ///
    /// See [`BeaconError`].
    pub fn from_bech32(s: &str) -> Result<Self, BeaconError> {
        let (hrp, data) = bech32::decode(s).map_err(BeaconError::Bech32)?;
        if hrp != HRP {
            return Err(BeaconError::UnknownHrp(hrp));
        }
        Self::decode_tlv(&data)
    }

    /// Decodes the beacon record.
    ///
    /// # Errors
    ///
    /// See [`BeaconError`].
    pub fn decode_tlv(bytes: &[u8]) -> Result<Self, BeaconError> {
        let (beacon, rest) = expect_record(bytes, BEACON_TLV_TYPE)?;
        if !rest.is_empty() {
            return Err(BeaconError::TrailingBytes(BEACON_TLV_TYPE));
        }
        let (seed, rest) = expect_record(beacon, SHARED_SEED_TLV_TYPE)?;
        let seed: [u8; SHARED_SEED_LEN] = seed
            .try_into()
            .map_err(|_| BeaconError::SharedSeedLength(seed.len()))?;
        let (list, rest) = expect_record(rest, LOCATION_LIST_TLV_TYPE)?;
        if !rest.is_empty() {
            return Err(BeaconError::TrailingBytes(LOCATION_LIST_TLV_TYPE));
        }
        let (count, mut rest) = expect_record(list, LOCATION_COUNT_TLV_TYPE)?;
        let count = match bigsize::decode(count).map_err(BeaconError::LocationCount)? {
            (n, []) => n,
            _ => return Err(BeaconError::TrailingBytes(LOCATION_COUNT_TLV_TYPE)),
        };
        // The count comes off the wire: never reserve from it. Each location consumes at
        // least two bytes of `list`, so the loop below is bounded by the input size.
        let mut locations = Vec::new();
        while (locations.len() as u64) < count {
            if rest.is_empty() {
                return Err(BeaconError::MissingLocations {
                    declared: count,
                    found: locations.len(),
                });
            }
            let (record, after) = tlv::Tlv::decode(rest).map_err(BeaconError::Tlv)?;
            let location = Location::decode(record.tlv_type, record.value)
                .ok_or(BeaconError::UnknownLocationType(record.tlv_type))?
                .map_err(BeaconError::Location)?;
            locations.push(location);
            rest = after;
        }
        if !rest.is_empty() {
            return Err(BeaconError::TrailingBytes(LOCATION_LIST_TLV_TYPE));
        }
        Ok(Beacon {
            shared_seed: SharedSeed::from_bytes(seed),
            locations,
        })
    }
}

impl FromStr for Beacon {
    type Err = BeaconError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Beacon::from_bech32(s)
    }
}

/// Decodes the record at the front of `input`, which must have type `expected`.
fn expect_record(input: &[u8], expected: u64) -> Result<(&[u8], &[u8]), BeaconError> {
    if input.is_empty() {
        return Err(BeaconError::MissingTlv(expected));
    }
    let (record, rest) = tlv::Tlv::decode(input).map_err(BeaconError::Tlv)?;
    if record.tlv_type != expected {
        return Err(BeaconError::UnexpectedTlv {
            expected,
            found: record.tlv_type,
        });
    }
    Ok((record.value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v0::location::WebSocketLocation;

    #[test]
    fn structural_errors_are_typed() {
        let seed = SharedSeed::from_bytes([1; 16]);
        let good = Beacon {
            shared_seed: seed,
            locations: vec![Location::WebSocket(WebSocketLocation::new("h", true))],
        };
        let bytes = good.encode_tlv();
        assert_eq!(Beacon::decode_tlv(&bytes), Ok(good.clone()));

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            Beacon::decode_tlv(&trailing),
            Err(BeaconError::TrailingBytes(BEACON_TLV_TYPE))
        );

        // Count says 2, one location present.
        let mut list = Vec::new();
        tlv::encode(LOCATION_COUNT_TLV_TYPE, &[2], &mut list);
        good.locations[0].encode(&mut list);
        let mut body = tlv::to_vec(SHARED_SEED_TLV_TYPE, seed.as_bytes());
        tlv::encode(LOCATION_LIST_TLV_TYPE, &list, &mut body);
        assert_eq!(
            Beacon::decode_tlv(&tlv::to_vec(BEACON_TLV_TYPE, &body)),
            Err(BeaconError::MissingLocations {
                declared: 2,
                found: 1
            })
        );

        // A 15-byte seed.
        let body = tlv::to_vec(SHARED_SEED_TLV_TYPE, &[0; 15]);
        assert_eq!(
            Beacon::decode_tlv(&tlv::to_vec(BEACON_TLV_TYPE, &body)),
            Err(BeaconError::SharedSeedLength(15))
        );

        // Unknown location type inside the list.
        let mut list = tlv::to_vec(LOCATION_COUNT_TLV_TYPE, &[1]);
        tlv::encode(65995, b"", &mut list);
        let mut body = tlv::to_vec(SHARED_SEED_TLV_TYPE, seed.as_bytes());
        tlv::encode(LOCATION_LIST_TLV_TYPE, &list, &mut body);
        assert_eq!(
            Beacon::decode_tlv(&tlv::to_vec(BEACON_TLV_TYPE, &body)),
            Err(BeaconError::UnknownLocationType(65995))
        );

        // Wrong outer type, and a v1-style hrp.
        assert_eq!(
            Beacon::decode_tlv(&tlv::to_vec(0, &[])),
            Err(BeaconError::UnexpectedTlv {
                expected: BEACON_TLV_TYPE,
                found: 0
            })
        );
        let v1_hrp = bech32::encode("moneysocket-x", &bytes).expect("short");
        assert_eq!(
            Beacon::from_bech32(&v1_hrp),
            Err(BeaconError::UnknownHrp("moneysocket-x".to_owned()))
        );
    }
}
