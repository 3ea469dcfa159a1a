//! v1 beacon locations (RFC `02-beacons.md`, py-moneysocket `beacon/location/*.py`).
//!
//! ```text
//! 0 WebSocket { 0 generator_preference u8   (absent ⇒ 255, 0 = most preferred)
//!               1 hostname utf8             (required)
//!               2 use_tls u8                (absent ⇒ TLS; only 0x00 may appear)
//!               3 port BigSize ≤ 65535      (absent ⇒ 443 with TLS, 80 without)
//!               4 path utf8                 (absent ⇒ ""; no leading '/') }
//! any other type ⇒ an unknown location, kept as bytes
//! ```
//!
//! Every field has one encoding: writing a default explicitly is an error, as in the
//! reference. We additionally require the records in strictly increasing type order
//! (BOLT #1), reject port 0, and reject a path starting with `/` — the reference would strip
//! it, so two spellings would mean the same location.

use std::num::NonZeroU16;

use crate::encoding::{bigsize, tlv};
use crate::error::{BigSizeError, TlvError};
use crate::v1::beacon::hostname::Hostname;

/// Record type of a WebSocket location.
pub const WEBSOCKET_LOCATION_TLV_TYPE: u64 = 0;
/// Preference used when a location carries none (least preferred).
pub const DEFAULT_GENERATOR_PREFERENCE: u8 = 255;
/// Port used for TLS locations without a port record.
pub const DEFAULT_TLS_PORT: u16 = 443;
/// Port used for plain locations without a port record.
pub const DEFAULT_NO_TLS_PORT: u16 = 80;

const GENERATOR_PREFERENCE_TLV_TYPE: u64 = 0;
const HOSTNAME_TLV_TYPE: u64 = 1;
const USE_TLS_TLV_TYPE: u64 = 2;
const PORT_TLV_TYPE: u64 = 3;
const PATH_TLV_TYPE: u64 = 4;

/// A location in a v1 beacon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A WebSocket endpoint.
    WebSocket(WebSocketLocation),
    /// A location type this implementation does not know, kept so the beacon can be
    /// re-encoded unchanged.
    Unknown(UnknownLocation),
}

/// A WebSocket endpoint `ws[s]://hostname:port/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketLocation {
    generator_preference: u8,
    hostname: Hostname,
    use_tls: bool,
    port: NonZeroU16,
    path: String,
}

/// A location record of a type other than WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLocation {
    tlv_type: u64,
    bytes: Vec<u8>,
}

/// A field of a WebSocket location, for error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebSocketField {
    /// Record 0.
    GeneratorPreference,
    /// Record 1.
    Hostname,
    /// Record 2.
    UseTls,
    /// Record 3.
    Port,
    /// Record 4.
    Path,
}

/// A WebSocket location could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebSocketLocationError {
    /// The value is not a stream of well-formed records.
    #[error("invalid websocket location TLVs: {0}")]
    InvalidTlvs(TlvError),
    /// The location has no records at all.
    #[error("no websocket location TLVs")]
    Empty,
    /// A record type WebSocket locations do not define.
    #[error("unknown TLV type {0} in websocket location")]
    UnknownTlv(u64),
    /// Records are repeated or not in increasing type order.
    #[error("websocket location record {found} follows record {previous}")]
    OutOfOrder {
        /// Type of the preceding record.
        previous: u64,
        /// Type of the offending record.
        found: u64,
    },
    /// A one-byte field has another length.
    #[error("websocket location field {field:?} has {found} bytes, expected 1")]
    FieldLength {
        /// Which field.
        field: WebSocketField,
        /// Its length.
        found: usize,
    },
    /// A field is present with its default value, which must be expressed by omission.
    #[error("{0:?} not minimally encoded")]
    RedundantDefault(WebSocketField),
    /// The hostname record is absent.
    #[error("missing hostname TLV")]
    MissingHostname,
    /// The hostname is not UTF-8.
    #[error("error decoding hostname string")]
    HostnameNotUtf8,
    /// The hostname is not a valid host name.
    #[error("invalid hostname {0:?}")]
    InvalidHostname(String),
    /// The `use_tls` byte is neither 0 nor 1.
    #[error("unknown use_tls setting {0}")]
    UnknownUseTls(u8),
    /// The port is not a valid BigSize.
    #[error("invalid port: {0}")]
    Port(BigSizeError),
    /// Bytes follow the port BigSize.
    #[error("extra port bytes")]
    PortTrailingBytes,
    /// The port exceeds 65535.
    #[error("port value {0} too large")]
    PortTooLarge(u64),
    /// The port is 0.
    #[error("port is zero")]
    PortZero,
    /// The path is not UTF-8.
    #[error("error decoding path")]
    PathNotUtf8,
    /// The path starts with `/`.
    #[error("path starts with '/'")]
    PathLeadingSlash,
}

impl WebSocketLocation {
    /// A location with default preference, port and path.
    pub fn new(hostname: Hostname, use_tls: bool) -> Self {
        WebSocketLocation {
            generator_preference: DEFAULT_GENERATOR_PREFERENCE,
            hostname,
            use_tls,
            port: default_port(use_tls),
            path: String::new(),
        }
    }

    /// Sets how much the beacon's generator prefers this location (0 = most).
    #[must_use]
    pub fn with_generator_preference(mut self, preference: u8) -> Self {
        self.generator_preference = preference;
        self
    }

    /// Sets the port.
    #[must_use]
    pub fn with_port(mut self, port: NonZeroU16) -> Self {
        self.port = port;
        self
    }

    /// Sets the URL path; leading slashes are dropped (`"/ws"` and `"ws"` are the same path).
    #[must_use]
    pub fn with_path(mut self, path: &str) -> Self {
        self.path = path.trim_start_matches('/').to_owned();
        self
    }

    /// The generator's preference (0 = most preferred, 255 = default).
    pub fn generator_preference(&self) -> u8 {
        self.generator_preference
    }

    /// The host name.
    pub fn hostname(&self) -> &Hostname {
        &self.hostname
    }

    /// `wss` if true.
    pub fn use_tls(&self) -> bool {
        self.use_tls
    }

    /// The port.
    pub fn port(&self) -> NonZeroU16 {
        self.port
    }

    /// The path without its leading `/` (empty for the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        let scheme = if self.use_tls { "wss" } else { "ws" };
        let slash = if self.path.is_empty() { "" } else { "/" };
        format!(
            "{scheme}://{}:{}{slash}{}",
            self.hostname, self.port, self.path
        )
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        if self.generator_preference != DEFAULT_GENERATOR_PREFERENCE {
            tlv::encode(
                GENERATOR_PREFERENCE_TLV_TYPE,
                &[self.generator_preference],
                &mut body,
            );
        }
        tlv::encode(
            HOSTNAME_TLV_TYPE,
            self.hostname.as_str().as_bytes(),
            &mut body,
        );
        if !self.use_tls {
            tlv::encode(USE_TLS_TLV_TYPE, &[0x00], &mut body);
        }
        if self.port != default_port(self.use_tls) {
            tlv::encode(
                PORT_TLV_TYPE,
                &bigsize::to_vec(u64::from(self.port.get())),
                &mut body,
            );
        }
        if !self.path.is_empty() {
            tlv::encode(PATH_TLV_TYPE, self.path.as_bytes(), &mut body);
        }
        tlv::encode(WEBSOCKET_LOCATION_TLV_TYPE, &body, out);
    }

    /// Decodes the value of a WebSocket location record.
    fn decode(value: &[u8]) -> Result<Self, WebSocketLocationError> {
        use WebSocketField as F;
        use WebSocketLocationError as E;
        tlv::validate(value).map_err(E::InvalidTlvs)?;
        if value.is_empty() {
            return Err(E::Empty);
        }
        let mut generator_preference = DEFAULT_GENERATOR_PREFERENCE;
        let mut hostname = None;
        let mut use_tls = true;
        let mut port = None;
        let mut path = String::new();
        let mut previous: Option<u64> = None;
        for record in tlv::iter(value) {
            let record = record.map_err(E::InvalidTlvs)?;
            let t = record.tlv_type;
            if t > PATH_TLV_TYPE {
                return Err(E::UnknownTlv(t));
            }
            if let Some(previous) = previous.filter(|&p| p >= t) {
                return Err(E::OutOfOrder { previous, found: t });
            }
            previous = Some(t);
            if t > HOSTNAME_TLV_TYPE && hostname.is_none() {
                return Err(E::MissingHostname);
            }
            let v = record.value;
            match t {
                GENERATOR_PREFERENCE_TLV_TYPE => {
                    generator_preference = single_byte(v, F::GeneratorPreference)?;
                    if generator_preference == DEFAULT_GENERATOR_PREFERENCE {
                        return Err(E::RedundantDefault(F::GeneratorPreference));
                    }
                }
                HOSTNAME_TLV_TYPE => {
                    let text = std::str::from_utf8(v).map_err(|_| E::HostnameNotUtf8)?;
                    hostname = Some(
                        text.parse()
                            .map_err(|_| E::InvalidHostname(text.to_owned()))?,
                    );
                }
                USE_TLS_TLV_TYPE => {
                    // Value first, then length, then the default: the reference's order.
                    let byte = *v.first().ok_or(E::FieldLength {
                        field: F::UseTls,
                        found: 0,
                    })?;
                    if byte > 1 {
                        return Err(E::UnknownUseTls(byte));
                    }
                    single_byte(v, F::UseTls)?;
                    if byte == 1 {
                        return Err(E::RedundantDefault(F::UseTls));
                    }
                    use_tls = false;
                }
                PORT_TLV_TYPE => {
                    let (n, rest) = bigsize::decode(v).map_err(E::Port)?;
                    if !rest.is_empty() {
                        return Err(E::PortTrailingBytes);
                    }
                    let n = u16::try_from(n).map_err(|_| E::PortTooLarge(n))?;
                    let n = NonZeroU16::new(n).ok_or(E::PortZero)?;
                    if n == default_port(use_tls) {
                        return Err(E::RedundantDefault(F::Port));
                    }
                    port = Some(n);
                }
                _ => {
                    let text = std::str::from_utf8(v).map_err(|_| E::PathNotUtf8)?;
                    if text.is_empty() {
                        return Err(E::RedundantDefault(F::Path));
                    }
                    if text.starts_with('/') {
                        return Err(E::PathLeadingSlash);
                    }
                    path = text.to_owned();
                }
            }
        }
        let hostname = hostname.ok_or(E::MissingHostname)?;
        Ok(WebSocketLocation {
            generator_preference,
            hostname,
            use_tls,
            port: port.unwrap_or_else(|| default_port(use_tls)),
            path,
        })
    }
}

fn single_byte(v: &[u8], field: WebSocketField) -> Result<u8, WebSocketLocationError> {
    match *v {
        [byte] => Ok(byte),
        _ => Err(WebSocketLocationError::FieldLength {
            field,
            found: v.len(),
        }),
    }
}

fn default_port(use_tls: bool) -> NonZeroU16 {
    let port = if use_tls {
        DEFAULT_TLS_PORT
    } else {
        DEFAULT_NO_TLS_PORT
    };
    NonZeroU16::new(port).unwrap_or(NonZeroU16::MIN)
}

impl UnknownLocation {
    /// An unknown location; `None` for type 0, which is the WebSocket type.
    pub fn new(tlv_type: u64, bytes: Vec<u8>) -> Option<Self> {
        (tlv_type != WEBSOCKET_LOCATION_TLV_TYPE).then_some(UnknownLocation { tlv_type, bytes })
    }

    /// The record type.
    pub fn tlv_type(&self) -> u64 {
        self.tlv_type
    }

    /// The record value.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Location {
    /// True for location types this implementation can connect to.
    pub fn is_known(&self) -> bool {
        matches!(self, Location::WebSocket(_))
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Location::WebSocket(ws) => ws.encode(out),
            Location::Unknown(u) => tlv::encode(u.tlv_type, &u.bytes, out),
        }
    }

    pub(crate) fn decode(record: tlv::Tlv<'_>) -> Result<Self, WebSocketLocationError> {
        if record.tlv_type == WEBSOCKET_LOCATION_TLV_TYPE {
            WebSocketLocation::decode(record.value).map(Location::WebSocket)
        } else {
            Ok(Location::Unknown(UnknownLocation {
                tlv_type: record.tlv_type,
                bytes: record.value.to_vec(),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(fields: &[u8]) -> Result<WebSocketLocation, WebSocketLocationError> {
        WebSocketLocation::decode(fields)
    }

    #[test]
    fn stricter_than_the_reference_where_documented() {
        use WebSocketLocationError as E;
        let host = [0x01, 0x01, b'h'];
        // Out of order: port before use_tls; and a repeated hostname.
        let swapped = [&host[..], &[0x03, 0x03, 0xfd, 0x1f, 0x90, 0x02, 0x01, 0x00]].concat();
        assert_eq!(
            decode(&swapped),
            Err(E::OutOfOrder {
                previous: 3,
                found: 2
            })
        );
        let twice = [&host[..], &host[..]].concat();
        assert_eq!(
            decode(&twice),
            Err(E::OutOfOrder {
                previous: 1,
                found: 1
            })
        );
        assert_eq!(
            decode(&[&host[..], &[0x03, 0x01, 0x00]].concat()),
            Err(E::PortZero)
        );
        assert_eq!(
            decode(&[&host[..], &[0x04, 0x01, b'/']].concat()),
            Err(E::PathLeadingSlash)
        );
        // use_tls before the hostname.
        assert_eq!(decode(&[0x02, 0x01, 0x00]), Err(E::MissingHostname));
    }

    #[test]
    fn builder_normalises_the_path() {
        let ws = WebSocketLocation::new("localhost".parse().expect("valid"), false)
            .with_path("//ws")
            .with_port(NonZeroU16::new(8080).expect("non-zero"));
        assert_eq!(ws.path(), "ws");
        assert_eq!(ws.url(), "ws://localhost:8080/ws");
        let mut bytes = Vec::new();
        ws.encode(&mut bytes);
        let (record, _) = tlv::Tlv::decode(&bytes).expect("record");
        assert_eq!(Location::decode(record), Ok(Location::WebSocket(ws)));
    }
}
