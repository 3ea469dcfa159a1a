//! v1 beacons (RFC `02-beacons.md`, py-moneysocket `moneysocket1/beacon/beacon.py`).
//!
//! ```text
//! 0 beacon { 0 generator_version  u8 major, minor, patch
//!            1 role_hint          u8 (optional)
//!            2 shared_seed        16 bytes (u64 hi ‖ u64 lo)
//!            3 location_list      { location records, see [`location`] }
//!            further records      kept as unknown, whatever their parity }
//! ```
//!
//! The human-readable part must start with `moneysocket`; anything after it is a hint for
//! people (`moneysocket-paste-into-wallet-1…`). Decoding is strict in the reference's ways —
//! fixed record order, nothing after the beacon record, at least one location this
//! implementation understands — and additionally requires unknown trailing records to have
//! types above 3 in increasing order, so a beacon cannot smuggle a second seed.

pub mod hostname;
pub mod location;

use std::str::FromStr;

use crate::encoding::bech32;
use crate::encoding::tlv::{self, RawTlv};
use crate::error::{Bech32Error, TlvError};
use crate::seed::{SharedSeed, SHARED_SEED_LEN};
use crate::v1::version::Version;

pub use hostname::{Hostname, InvalidHostname};
pub use location::{
    Location, UnknownLocation, WebSocketField, WebSocketLocation, WebSocketLocationError,
};

/// The prefix every v1 human-readable part starts with.
pub const HRP_PREFIX: &str = "moneysocket";

const BEACON_TLV_TYPE: u64 = 0;
const GENERATOR_VERSION_TLV_TYPE: u64 = 0;
const ROLE_HINT_TLV_TYPE: u64 = 1;
const SHARED_SEED_TLV_TYPE: u64 = 2;
const LOCATION_LIST_TLV_TYPE: u64 = 3;

/// Which end generated the beacon and what it expects the scanner to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleHint {
    /// 0: a provider made it and waits for a consumer.
    ProviderGeneratorSeekingConsumer,
    /// 1: a consumer made it and waits for a provider.
    ConsumerGeneratorSeekingProvider,
    /// 2: roles are negotiated after connecting.
    AutomaticGenerator,
}

impl RoleHint {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            RoleHint::ProviderGeneratorSeekingConsumer => 0,
            RoleHint::ConsumerGeneratorSeekingProvider => 1,
            RoleHint::AutomaticGenerator => 2,
        }
    }

    /// Reads the wire byte; `None` for unassigned values.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(RoleHint::ProviderGeneratorSeekingConsumer),
            1 => Some(RoleHint::ConsumerGeneratorSeekingProvider),
            2 => Some(RoleHint::AutomaticGenerator),
            _ => None,
        }
    }

    /// The name the references use (`"AUTOMATIC_GENERATOR"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RoleHint::ProviderGeneratorSeekingConsumer => "PROVIDER_GENERATOR_SEEKING_CONSUMER",
            RoleHint::ConsumerGeneratorSeekingProvider => "CONSUMER_GENERATOR_SEEKING_PROVIDER",
            RoleHint::AutomaticGenerator => "AUTOMATIC_GENERATOR",
        }
    }
}

/// A validated v1 beacon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    hrp: String,
    generator_version: Version,
    role_hint: Option<RoleHint>,
    shared_seed: SharedSeed,
    locations: Vec<Location>,
    unknown_tlvs: Vec<RawTlv>,
}

/// A fixed-size beacon field, for error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BeaconField {
    /// `generator_version`, 3 bytes.
    GeneratorVersion,
    /// `role_hint`, 1 byte.
    RoleHint,
    /// `shared_seed`, 16 bytes.
    SharedSeed,
}

/// A v1 beacon could not be decoded or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BeaconError {
    /// The text is not valid bech32.
    #[error("could not decode bech32 string: {0}")]
    Bech32(Bech32Error),
    /// The human-readable part does not start with `moneysocket`.
    #[error("unknown human readable part {0:?}")]
    UnknownHrp(String),
    /// The outer record is malformed.
    #[error("invalid beacon TLV: {0}")]
    BeaconTlv(TlvError),
    /// The outer record has a type other than 0.
    #[error("unknown TLV type {0} where the beacon was expected")]
    NotABeacon(u64),
    /// Bytes follow the beacon record.
    #[error("extra bytes in beacon")]
    TrailingBytes,
    /// The beacon record is empty.
    #[error("no TLVs")]
    NoTlvs,
    /// The beacon's contents are not a stream of well-formed records.
    #[error("invalid TLVs in beacon: {0}")]
    InvalidTlvs(TlvError),
    /// The first record is not the generator version.
    #[error("missing generator_version TLV")]
    MissingGeneratorVersion,
    /// A fixed-size field has the wrong length.
    #[error("beacon field {field:?} has {found} bytes")]
    FieldLength {
        /// Which field.
        field: BeaconField,
        /// Its length.
        found: usize,
    },
    /// Nothing follows the generator version.
    #[error("missing shared_seed or role_hint TLV")]
    MissingSharedSeedOrRoleHint,
    /// The role hint byte is unassigned.
    #[error("unknown role_hint value {0}")]
    UnknownRoleHint(u8),
    /// The shared seed record is absent or out of place.
    #[error("missing shared_seed TLV")]
    MissingSharedSeed,
    /// The location list record is absent or out of place.
    #[error("missing location_list TLV")]
    MissingLocationList,
    /// The location list is not a stream of well-formed records.
    #[error("invalid location_list: {0}")]
    InvalidLocationList(TlvError),
    /// The location list is empty.
    #[error("no locations in location_list")]
    NoLocations,
    /// No location is of a type this implementation understands.
    #[error("no known locations in location_list")]
    NoKnownLocations,
    /// A WebSocket location is invalid.
    #[error("invalid websocket location: {0}")]
    WebSocket(WebSocketLocationError),
    /// An unknown record after the location list repeats or precedes a defined type, or
    /// breaks increasing order.
    #[error("unknown TLV {found} follows TLV {previous}")]
    UnknownTlvOrder {
        /// Type of the preceding record.
        previous: u64,
        /// Type of the offending record.
        found: u64,
    },
}

impl Beacon {
    /// A beacon with the plain `moneysocket` prefix, no role hint and no unknown records.
    ///
    /// # Errors
    ///
    /// [`BeaconError::NoLocations`] or [`BeaconError::NoKnownLocations`]: a beacon nobody can
    /// connect to is refused here as it would be by a decoder.
    pub fn new(
        generator_version: Version,
        shared_seed: SharedSeed,
        locations: Vec<Location>,
    ) -> Result<Self, BeaconError> {
        check_locations(&locations)?;
        Ok(Beacon {
            hrp: HRP_PREFIX.to_owned(),
            generator_version,
            role_hint: None,
            shared_seed,
            locations,
            unknown_tlvs: Vec::new(),
        })
    }

    /// Sets the role hint.
    #[must_use]
    pub fn with_role_hint(mut self, role_hint: Option<RoleHint>) -> Self {
        self.role_hint = role_hint;
        self
    }

    /// Sets the human-readable part, e.g. `moneysocket-paste-into-wallet-`.
    ///
    /// # Errors
    ///
    /// [`BeaconError::UnknownHrp`] unless it starts with `moneysocket` (any case), and
    /// [`BeaconError::Bech32`] if bech32 cannot carry it.
    pub fn with_hrp(mut self, hrp: &str) -> Result<Self, BeaconError> {
        let hrp = hrp.to_ascii_lowercase();
        bitcoin::bech32::Hrp::parse(&hrp).map_err(|e| BeaconError::Bech32(Bech32Error::Hrp(e)))?;
        if !hrp.starts_with(HRP_PREFIX) {
            return Err(BeaconError::UnknownHrp(hrp));
        }
        self.hrp = hrp;
        Ok(self)
    }

    /// Sets the records appended after the location list.
    ///
    /// # Errors
    ///
    /// [`BeaconError::UnknownTlvOrder`] unless the types are above 3 and strictly increasing.
    pub fn with_unknown_tlvs(mut self, unknown_tlvs: Vec<RawTlv>) -> Result<Self, BeaconError> {
        check_unknown_order(unknown_tlvs.iter().map(|t| t.tlv_type))?;
        self.unknown_tlvs = unknown_tlvs;
        Ok(self)
    }

    /// The human-readable part, lower case.
    pub fn hrp(&self) -> &str {
        &self.hrp
    }

    /// The version of the software that made the beacon.
    pub fn generator_version(&self) -> Version {
        self.generator_version
    }

    /// The role hint, if any.
    pub fn role_hint(&self) -> Option<RoleHint> {
        self.role_hint
    }

    /// The shared seed.
    pub fn shared_seed(&self) -> &SharedSeed {
        &self.shared_seed
    }

    /// The locations, in beacon order (not sorted by preference).
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }

    /// Records after the location list that this implementation does not interpret.
    pub fn unknown_tlvs(&self) -> &[RawTlv] {
        &self.unknown_tlvs
    }

    /// The beacon record.
    pub fn encode_tlv(&self) -> Vec<u8> {
        let mut body = tlv::to_vec(
            GENERATOR_VERSION_TLV_TYPE,
            &self.generator_version.to_bytes(),
        );
        if let Some(role_hint) = self.role_hint {
            tlv::encode(ROLE_HINT_TLV_TYPE, &[role_hint.to_byte()], &mut body);
        }
        tlv::encode(SHARED_SEED_TLV_TYPE, self.shared_seed.as_bytes(), &mut body);
        let mut list = Vec::new();
        for location in &self.locations {
            location.encode(&mut list);
        }
        tlv::encode(LOCATION_LIST_TLV_TYPE, &list, &mut body);
        for unknown in &self.unknown_tlvs {
            unknown.encode(&mut body);
        }
        tlv::to_vec(BEACON_TLV_TYPE, &body)
    }

    /// The beacon as bech32 text under its human-readable part.
    ///
    /// # Errors
    ///
    /// [`Bech32Error::TooLong`] if the beacon exceeds the bech32 length limit.
    pub fn to_bech32(&self) -> Result<String, Bech32Error> {
        bech32::encode(&self.hrp, &self.encode_tlv())
    }

    /// Parses beacon text (either case).
    ///
    /// # Errors
    ///
    /// See [`BeaconError`].
    pub fn from_bech32(s: &str) -> Result<Self, BeaconError> {
        let (hrp, data) = bech32::decode(s).map_err(BeaconError::Bech32)?;
        if !hrp.starts_with(HRP_PREFIX) {
            return Err(BeaconError::UnknownHrp(hrp));
        }
        let mut beacon = Self::decode_tlv(&data)?;
        beacon.hrp = hrp;
        Ok(beacon)
    }

    /// Decodes a beacon record; the result has the plain `moneysocket` prefix.
    ///
    /// # Errors
    ///
    /// See [`BeaconError`].
    pub fn decode_tlv(bytes: &[u8]) -> Result<Self, BeaconError> {
        use BeaconError as E;
        let (outer, rest) = tlv::Tlv::decode(bytes).map_err(E::BeaconTlv)?;
        if outer.tlv_type != BEACON_TLV_TYPE {
            return Err(E::NotABeacon(outer.tlv_type));
        }
        if !rest.is_empty() {
            return Err(E::TrailingBytes);
        }
        tlv::validate(outer.value).map_err(E::InvalidTlvs)?;
        // Every record below was validated above, so the iterator yields no errors; they are
        // mapped anyway rather than unwrapped.
        let mut records = tlv::iter(outer.value);
        let mut next = || records.next().transpose().map_err(E::InvalidTlvs);

        let version = match next()? {
            None => return Err(E::NoTlvs),
            Some(r) if r.tlv_type == GENERATOR_VERSION_TLV_TYPE => r,
            Some(_) => return Err(E::MissingGeneratorVersion),
        };
        let generator_version = Version::from_bytes(version.value).ok_or(E::FieldLength {
            field: BeaconField::GeneratorVersion,
            found: version.value.len(),
        })?;

        let (role_hint, seed) = match next()? {
            None => return Err(E::MissingSharedSeedOrRoleHint),
            Some(r) if r.tlv_type == ROLE_HINT_TLV_TYPE => {
                let field_length = |found| E::FieldLength {
                    field: BeaconField::RoleHint,
                    found,
                };
                let byte = *r.value.first().ok_or(field_length(0))?;
                let hint = RoleHint::from_byte(byte).ok_or(E::UnknownRoleHint(byte))?;
                if r.value.len() != 1 {
                    return Err(field_length(r.value.len()));
                }
                match next()? {
                    Some(s) if s.tlv_type == SHARED_SEED_TLV_TYPE => (Some(hint), s),
                    _ => return Err(E::MissingSharedSeed),
                }
            }
            Some(r) if r.tlv_type == SHARED_SEED_TLV_TYPE => (None, r),
            Some(_) => return Err(E::MissingSharedSeed),
        };
        let seed: [u8; SHARED_SEED_LEN] = seed.value.try_into().map_err(|_| E::FieldLength {
            field: BeaconField::SharedSeed,
            found: seed.value.len(),
        })?;

        let list = match next()? {
            Some(r) if r.tlv_type == LOCATION_LIST_TLV_TYPE => r.value,
            _ => return Err(E::MissingLocationList),
        };
        let locations = decode_locations(list)?;

        let mut unknown_tlvs = Vec::new();
        while let Some(record) = next()? {
            unknown_tlvs.push(record.to_raw());
        }
        check_unknown_order(unknown_tlvs.iter().map(|t| t.tlv_type))?;

        Ok(Beacon {
            hrp: HRP_PREFIX.to_owned(),
            generator_version,
            role_hint,
            shared_seed: SharedSeed::from_bytes(seed),
            locations,
            unknown_tlvs,
        })
    }
}

impl FromStr for Beacon {
    type Err = BeaconError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Beacon::from_bech32(s)
    }
}

fn decode_locations(list: &[u8]) -> Result<Vec<Location>, BeaconError> {
    tlv::validate(list).map_err(BeaconError::InvalidLocationList)?;
    let locations = tlv::iter(list)
        .map(|record| {
            let record = record.map_err(BeaconError::InvalidLocationList)?;
            Location::decode(record).map_err(BeaconError::WebSocket)
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_locations(&locations)?;
    Ok(locations)
}

fn check_locations(locations: &[Location]) -> Result<(), BeaconError> {
    if locations.is_empty() {
        return Err(BeaconError::NoLocations);
    }
    if !locations.iter().any(Location::is_known) {
        return Err(BeaconError::NoKnownLocations);
    }
    Ok(())
}

fn check_unknown_order(types: impl Iterator<Item = u64>) -> Result<(), BeaconError> {
    let mut previous = LOCATION_LIST_TLV_TYPE;
    for found in types {
        if found <= previous {
            return Err(BeaconError::UnknownTlvOrder { previous, found });
        }
        previous = found;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> Location {
        Location::WebSocket(WebSocketLocation::new(
            "relay.socket.money".parse().expect("valid"),
            true,
        ))
    }

    #[test]
    fn constructor_refuses_what_decoders_refuse() {
        let seed = SharedSeed::from_bytes([7; 16]);
        let v = Version::new(1, 0, 0);
        assert_eq!(Beacon::new(v, seed, vec![]), Err(BeaconError::NoLocations));
        let unknown = Location::Unknown(UnknownLocation::new(9, vec![1]).expect("not type 0"));
        assert_eq!(
            Beacon::new(v, seed, vec![unknown]),
            Err(BeaconError::NoKnownLocations)
        );
        let beacon = Beacon::new(v, seed, vec![relay()]).expect("valid");
        assert_eq!(
            beacon.clone().with_unknown_tlvs(vec![RawTlv {
                tlv_type: 2,
                value: vec![0; 16]
            }]),
            Err(BeaconError::UnknownTlvOrder {
                previous: 3,
                found: 2
            })
        );
        assert_eq!(
            beacon.clone().with_hrp("lnbc"),
            Err(BeaconError::UnknownHrp("lnbc".to_owned()))
        );
        let shouting = beacon
            .with_hrp("MONEYSOCKET-X")
            .expect("case-insensitive prefix");
        assert_eq!(shouting.hrp(), "moneysocket-x");
    }

    #[test]
    fn a_second_seed_cannot_hide_in_unknown_records() {
        let seed = SharedSeed::from_bytes([7; 16]);
        let beacon = Beacon::new(Version::new(1, 0, 0), seed, vec![relay()]).expect("valid");
        let mut bytes = beacon.encode_tlv();
        // Append a second shared-seed record inside the beacon record.
        let (outer, _) = tlv::Tlv::decode(&bytes).expect("record");
        let mut body = outer.value.to_vec();
        tlv::encode(SHARED_SEED_TLV_TYPE, &[9; 16], &mut body);
        bytes = tlv::to_vec(BEACON_TLV_TYPE, &body);
        assert_eq!(
            Beacon::decode_tlv(&bytes),
            Err(BeaconError::UnknownTlvOrder {
                previous: 3,
                found: 2
            })
        );
    }
}
