//! v0 beacon locations: where the two ends meet.
//!
//! Only WebSocket locations are usable; WebRTC, Bluetooth and NFC exist in the references as
//! placeholders carrying a single string. Inside a location the references read the sub-records
//! into a dictionary, so order is free and unknown types are ignored; we do the same, but refuse
//! repeated types, which a dictionary would silently resolve to the last one.

use std::num::NonZeroU16;

use crate::encoding::{bigsize, tlv};
use crate::error::{BigSizeError, TlvError};

/// Record type of a WebSocket location (`65979 + 8`).
pub const WEBSOCKET_LOCATION_TLV_TYPE: u64 = 65987;
/// Record type of a WebRTC placeholder location (`65979 + 10`).
pub const WEBRTC_LOCATION_TLV_TYPE: u64 = 65989;
/// Record type of a Bluetooth placeholder location (`65979 + 12`).
pub const BLUETOOTH_LOCATION_TLV_TYPE: u64 = 65991;
/// Record type of an NFC placeholder location (`65979 + 14`).
pub const NFC_LOCATION_TLV_TYPE: u64 = 65993;

const HOST_TLV_TYPE: u64 = 0;
const USE_TLS_TLV_TYPE: u64 = 1;
const PORT_TLV_TYPE: u64 = 2;
const PLACEHOLDER_TLV_TYPE: u64 = 0;

/// Port used when a TLS location carries no port record.
pub const DEFAULT_TLS_PORT: u16 = 443;
/// Port used when a plain location carries no port record.
pub const DEFAULT_NO_TLS_PORT: u16 = 80;

/// A location inside a v0 beacon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A WebSocket relay or listener.
    WebSocket(WebSocketLocation),
    /// WebRTC placeholder.
    WebRtc(PlaceholderLocation),
    /// Bluetooth placeholder.
    Bluetooth(PlaceholderLocation),
    /// NFC placeholder.
    Nfc(PlaceholderLocation),
}

/// A WebSocket endpoint: `ws[s]://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketLocation {
    /// Host name or address, as given (v0 does not validate it).
    pub host: String,
    /// `wss` if true. Absent on the wire means true.
    pub use_tls: bool,
    /// Absent on the wire means 443 with TLS, 80 without.
    pub port: NonZeroU16,
}

/// The single-string body of the WebRTC, Bluetooth and NFC locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceholderLocation {
    /// Free text; the references write e.g. `"webrtc herpader"`.
    pub placeholder: String,
}

/// A v0 location record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// The record value is not a stream of well-formed records.
    #[error("invalid location records: {0}")]
    Tlv(TlvError),
    /// A record type appears twice.
    #[error("duplicate record type {0} in location")]
    DuplicateTlv(u64),
    /// The host (WebSocket) or placeholder string (others) is missing.
    #[error("location has no host or placeholder record")]
    MissingString,
    /// The host or placeholder string is not UTF-8.
    #[error("location string is not UTF-8")]
    NotUtf8,
    /// The `use_tls` value is not a valid BigSize.
    #[error("invalid use_tls value: {0}")]
    UseTls(BigSizeError),
    /// The `use_tls` value is neither 0 nor 1.
    #[error("unknown use_tls setting {0}")]
    UnknownUseTls(u64),
    /// The port value is not a valid BigSize.
    #[error("invalid port value: {0}")]
    Port(BigSizeError),
    /// The port is 0 or above 65535.
    #[error("port {0} out of range")]
    PortOutOfRange(u64),
    /// Bytes follow a BigSize inside a record.
    #[error("trailing bytes after a location value")]
    TrailingBytes,
}

impl WebSocketLocation {
    /// A location on the default port for `use_tls`.
    pub fn new(host: impl Into<String>, use_tls: bool) -> Self {
        WebSocketLocation {
            host: host.into(),
            use_tls,
            port: default_port(use_tls),
        }
    }

    /// The URL apps connect to.
    pub fn url(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.use_tls { "wss" } else { "ws" },
            self.host,
            self.port
        )
    }
}

impl PlaceholderLocation {
    /// The placeholder the references put in a WebRTC location.
    pub fn webrtc() -> Self {
        PlaceholderLocation {
            placeholder: "webrtc herpader".to_owned(),
        }
    }

    /// The placeholder the references put in a Bluetooth location.
    pub fn bluetooth() -> Self {
        PlaceholderLocation {
            placeholder: "bluetooth herpader".to_owned(),
        }
    }

    /// The placeholder the references put in an NFC location.
    pub fn nfc() -> Self {
        PlaceholderLocation {
            placeholder: "nfc herpader".to_owned(),
        }
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

impl Location {
    /// The record type this location is encoded under.
    pub fn tlv_type(&self) -> u64 {
        match self {
            Location::WebSocket(_) => WEBSOCKET_LOCATION_TLV_TYPE,
            Location::WebRtc(_) => WEBRTC_LOCATION_TLV_TYPE,
            Location::Bluetooth(_) => BLUETOOTH_LOCATION_TLV_TYPE,
            Location::Nfc(_) => NFC_LOCATION_TLV_TYPE,
        }
    }

    /// Appends the location record. Defaults are omitted, as the references do: `use_tls` is
    /// written only as 0, the port only when it differs from the default.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        match self {
            Location::WebSocket(ws) => {
                tlv::encode(HOST_TLV_TYPE, ws.host.as_bytes(), &mut body);
                if !ws.use_tls {
                    tlv::encode(USE_TLS_TLV_TYPE, &bigsize::to_vec(0), &mut body);
                }
                if ws.port != default_port(ws.use_tls) {
                    let port = bigsize::to_vec(u64::from(ws.port.get()));
                    tlv::encode(PORT_TLV_TYPE, &port, &mut body);
                }
            }
            Location::WebRtc(p) | Location::Bluetooth(p) | Location::Nfc(p) => {
                tlv::encode(PLACEHOLDER_TLV_TYPE, p.placeholder.as_bytes(), &mut body);
            }
        }
        tlv::encode(self.tlv_type(), &body, out);
    }

    /// Decodes the body of a location record of a known type; `None` for unknown types.
    pub(crate) fn decode(tlv_type: u64, value: &[u8]) -> Option<Result<Location, LocationError>> {
        let decoded = match tlv_type {
            WEBSOCKET_LOCATION_TLV_TYPE => decode_websocket(value).map(Location::WebSocket),
            WEBRTC_LOCATION_TLV_TYPE => decode_placeholder(value).map(Location::WebRtc),
            BLUETOOTH_LOCATION_TLV_TYPE => decode_placeholder(value).map(Location::Bluetooth),
            NFC_LOCATION_TLV_TYPE => decode_placeholder(value).map(Location::Nfc),
            _ => return None,
        };
        Some(decoded)
    }
}

/// The sub-records of a location, at most one per type.
struct Fields<'a>(Vec<tlv::Tlv<'a>>);

impl<'a> Fields<'a> {
    fn parse(value: &'a [u8]) -> Result<Self, LocationError> {
        let mut fields: Vec<tlv::Tlv<'a>> = Vec::new();
        for record in tlv::iter(value) {
            let record = record.map_err(LocationError::Tlv)?;
            if fields.iter().any(|f| f.tlv_type == record.tlv_type) {
                return Err(LocationError::DuplicateTlv(record.tlv_type));
            }
            fields.push(record);
        }
        Ok(Fields(fields))
    }

    fn get(&self, tlv_type: u64) -> Option<&'a [u8]> {
        self.0
            .iter()
            .find(|f| f.tlv_type == tlv_type)
            .map(|f| f.value)
    }

    fn string(&self, tlv_type: u64) -> Result<String, LocationError> {
        let bytes = self.get(tlv_type).ok_or(LocationError::MissingString)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| LocationError::NotUtf8)
    }
}

/// Decodes a BigSize that must fill `value` exactly.
fn whole_bigsize(value: &[u8]) -> Result<Result<u64, BigSizeError>, LocationError> {
    match bigsize::decode(value) {
        Ok((n, [])) => Ok(Ok(n)),
        Ok(_) => Err(LocationError::TrailingBytes),
        Err(e) => Ok(Err(e)),
    }
}

fn decode_websocket(value: &[u8]) -> Result<WebSocketLocation, LocationError> {
    let fields = Fields::parse(value)?;
    let host = fields.string(HOST_TLV_TYPE)?;
    let use_tls = match fields.get(USE_TLS_TLV_TYPE) {
        None => true,
        Some(v) => match whole_bigsize(v)?.map_err(LocationError::UseTls)? {
            0 => false,
            1 => true,
            other => return Err(LocationError::UnknownUseTls(other)),
        },
    };
    let port = match fields.get(PORT_TLV_TYPE) {
        None => default_port(use_tls),
        Some(v) => {
            let port = whole_bigsize(v)?.map_err(LocationError::Port)?;
            u16::try_from(port)
                .ok()
                .and_then(NonZeroU16::new)
                .ok_or(LocationError::PortOutOfRange(port))?
        }
    };
    Ok(WebSocketLocation {
        host,
        use_tls,
        port,
    })
}

fn decode_placeholder(value: &[u8]) -> Result<PlaceholderLocation, LocationError> {
    let fields = Fields::parse(value)?;
    Ok(PlaceholderLocation {
        placeholder: fields.string(PLACEHOLDER_TLV_TYPE)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_record(bytes: &[u8]) -> Result<Location, LocationError> {
        let (record, rest) = tlv::Tlv::decode(bytes).expect("one record");
        assert!(rest.is_empty());
        Location::decode(record.tlv_type, record.value).expect("known type")
    }

    #[test]
    fn websocket_defaults_are_omitted_and_restored() {
        let plain = Location::WebSocket(WebSocketLocation::new("localhost", false));
        let mut bytes = Vec::new();
        plain.encode(&mut bytes);
        // host, then use_tls = 0, and no port record for the default 80.
        assert_eq!(
            bytes,
            tlv::to_vec(
                65987,
                &[
                    0x00, 0x09, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', 0x01, 0x01,
                    0x00
                ]
            )
        );
        assert_eq!(decode_record(&bytes), Ok(plain));

        let custom = WebSocketLocation {
            host: "relay.example".to_owned(),
            use_tls: true,
            port: NonZeroU16::new(8443).expect("non-zero"),
        };
        let mut bytes = Vec::new();
        Location::WebSocket(custom.clone()).encode(&mut bytes);
        assert_eq!(
            decode_record(&bytes),
            Ok(Location::WebSocket(custom.clone()))
        );
        assert_eq!(custom.url(), "wss://relay.example:8443");
    }

    #[test]
    fn malformed_websocket_records_are_typed() {
        let with = |fields: &[u8]| decode_record(&tlv::to_vec(WEBSOCKET_LOCATION_TLV_TYPE, fields));
        assert_eq!(with(&[]), Err(LocationError::MissingString));
        assert_eq!(with(&[0x00, 0x01, 0xff]), Err(LocationError::NotUtf8));
        assert_eq!(
            with(&[0x00, 0x01, b'a', 0x00, 0x01, b'b']),
            Err(LocationError::DuplicateTlv(0))
        );
        assert_eq!(
            with(&[0x00, 0x01, b'a', 0x01, 0x01, 0x02]),
            Err(LocationError::UnknownUseTls(2))
        );
        assert_eq!(
            with(&[0x00, 0x01, b'a', 0x01, 0x02, 0x00, 0x00]),
            Err(LocationError::TrailingBytes)
        );
        assert_eq!(
            with(&[0x00, 0x01, b'a', 0x02, 0x01, 0x00]),
            Err(LocationError::PortOutOfRange(0))
        );
        assert_eq!(
            with(&[0x00, 0x01, b'a', 0x02, 0x05, 0xfe, 0x00, 0x01, 0x00, 0x00]),
            Err(LocationError::PortOutOfRange(65536))
        );
        assert_eq!(
            with(&[0x00, 0x01, b'a', 0x02, 0x03, 0xfd, 0x00, 0x50]),
            Err(LocationError::Port(BigSizeError::NotMinimal { value: 80 }))
        );
        assert!(matches!(
            with(&[0x00, 0x05, b'a']),
            Err(LocationError::Tlv(_))
        ));
        // Unknown sub-records are ignored, as the references do.
        assert!(with(&[0x00, 0x01, b'a', 0x07, 0x00]).is_ok());
    }
}
