//! v1 beacon vectors: `02-beacon-encode-decode.json` and `02-beacon-decode-error.json`.

mod common;

use std::num::NonZeroU16;

use common::{hex, load_vectors, str_field, to_hex, Report};
use moip_moneysocket::encoding::bech32;
use moip_moneysocket::encoding::tlv::RawTlv;
use moip_moneysocket::error::{Bech32Error, BigSizeError, TlvError};
use moip_moneysocket::v1::beacon::{
    Beacon, BeaconError, BeaconField, Location, RoleHint, UnknownLocation, WebSocketField,
    WebSocketLocation, WebSocketLocationError as Ws,
};
use moip_moneysocket::v1::version::Version;
use moip_moneysocket::SharedSeed;
use serde_json::Value;

fn version_from(v: &Value) -> Version {
    let part = |k: &str| u8::try_from(v[k].as_u64().expect("version part")).expect("u8");
    Version::new(part("major"), part("minor"), part("patch"))
}

fn role_hint_from(v: &Value) -> Option<RoleHint> {
    let name = v.as_str()?;
    [
        RoleHint::ProviderGeneratorSeekingConsumer,
        RoleHint::ConsumerGeneratorSeekingProvider,
        RoleHint::AutomaticGenerator,
    ]
    .into_iter()
    .find(|h| h.name() == name)
}

/// Builds the beacon a `decoded` object describes, through the public constructors.
fn beacon_from(decoded: &Value) -> Result<Beacon, String> {
    let seed: SharedSeed = str_field(decoded, "shared_seed")
        .parse()
        .map_err(|e| format!("seed: {e}"))?;
    let mut locations = Vec::new();
    for l in decoded["locations"].as_array().ok_or("locations")? {
        let location = match str_field(l, "location_type") {
            "WebSocket" => {
                let host = str_field(l, "hostname")
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                let use_tls = l["use_tls"].as_bool().ok_or("use_tls")?;
                let port =
                    u16::try_from(l["port"].as_u64().ok_or("port")?).map_err(|e| e.to_string())?;
                let pref = u8::try_from(l["generator_preference"].as_u64().ok_or("pref")?)
                    .map_err(|e| e.to_string())?;
                Location::WebSocket(
                    WebSocketLocation::new(host, use_tls)
                        .with_port(NonZeroU16::new(port).ok_or("port 0")?)
                        .with_path(str_field(l, "path"))
                        .with_generator_preference(pref),
                )
            }
            "Unknown" => Location::Unknown(
                UnknownLocation::new(
                    l["tlv_type"].as_u64().ok_or("tlv_type")?,
                    hex(str_field(l, "bytes")),
                )
                .ok_or("unknown location of type 0")?,
            ),
            other => return Err(format!("location type {other}")),
        };
        locations.push(location);
    }
    let unknown_tlvs = decoded["unknown_tlvs"]
        .as_array()
        .ok_or("unknown_tlvs")?
        .iter()
        .map(|t| RawTlv {
            tlv_type: t["t"].as_u64().unwrap_or(u64::MAX),
            value: hex(str_field(t, "v")),
        })
        .collect();
    Beacon::new(version_from(&decoded["generator_version"]), seed, locations)
        .and_then(|b| b.with_hrp(str_field(decoded, "hrp")))
        .and_then(|b| b.with_unknown_tlvs(unknown_tlvs))
        .map(|b| b.with_role_hint(role_hint_from(&decoded["role_hint"])))
        .map_err(|e| format!("building: {e}"))
}

/// Compares a decoded beacon with the vector's `decoded` object, field by field.
fn compare(got: &Beacon, want: &Value) -> Result<(), String> {
    let check = |what: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(format!("{what} differs"))
        }
    };
    check("hrp", got.hrp() == str_field(want, "hrp"))?;
    check(
        "generator_version",
        got.generator_version() == version_from(&want["generator_version"]),
    )?;
    check(
        "role_hint",
        got.role_hint().map(RoleHint::name) == want["role_hint"].as_str(),
    )?;
    check(
        "shared_seed",
        got.shared_seed().to_hex() == str_field(want, "shared_seed"),
    )?;
    let want_locations = want["locations"].as_array().ok_or("locations")?;
    check(
        "location count",
        got.locations().len() == want_locations.len(),
    )?;
    for (g, w) in got.locations().iter().zip(want_locations) {
        match g {
            Location::WebSocket(ws) => {
                check(
                    "location type",
                    str_field(w, "location_type") == "WebSocket",
                )?;
                check(
                    "generator_preference",
                    Some(u64::from(ws.generator_preference()))
                        == w["generator_preference"].as_u64(),
                )?;
                check(
                    "hostname",
                    ws.hostname().as_str() == str_field(w, "hostname"),
                )?;
                check("use_tls", Some(ws.use_tls()) == w["use_tls"].as_bool())?;
                check(
                    "port",
                    Some(u64::from(ws.port().get())) == w["port"].as_u64(),
                )?;
                check("path", ws.path() == str_field(w, "path"))?;
            }
            Location::Unknown(u) => {
                check("location type", str_field(w, "location_type") == "Unknown")?;
                check("tlv_type", Some(u.tlv_type()) == w["tlv_type"].as_u64())?;
                check("bytes", to_hex(u.bytes()) == str_field(w, "bytes"))?;
            }
        }
    }
    let want_unknown = want["unknown_tlvs"].as_array().ok_or("unknown_tlvs")?;
    check(
        "unknown tlv count",
        got.unknown_tlvs().len() == want_unknown.len(),
    )?;
    for (g, w) in got.unknown_tlvs().iter().zip(want_unknown) {
        check("unknown t", Some(g.tlv_type) == w["t"].as_u64())?;
        check("unknown l", Some(g.value.len() as u64) == w["l"].as_u64())?;
        check("unknown v", to_hex(&g.value) == str_field(w, "v"))?;
    }
    Ok(())
}

#[test]
fn beacon_encode_decode_vectors() {
    let mut report = Report::new("02-beacon-encode-decode.json");
    for case in load_vectors("02-beacon-encode-decode.json") {
        let encoded = str_field(&case, "encoded");
        let result = (|| {
            let decoded = Beacon::from_bech32(encoded).map_err(|e| format!("decode: {e}"))?;
            compare(&decoded, &case["decoded"])?;
            let reencoded = decoded.to_bech32().map_err(|e| format!("re-encode: {e}"))?;
            if reencoded != encoded {
                return Err(format!("re-encoded to {reencoded}"));
            }
            let built = beacon_from(&case["decoded"])?;
            let built_text = built.to_bech32().map_err(|e| format!("encode: {e}"))?;
            if built_text != encoded {
                return Err(format!("built beacon encodes to {built_text}"));
            }
            if built != decoded {
                return Err("built and decoded beacons differ".to_owned());
            }
            // QR codes carry the upper-case form.
            match Beacon::from_bech32(&encoded.to_uppercase()) {
                Ok(b) if b == decoded => Ok(()),
                other => Err(format!("upper-case form: {other:?}")),
            }
        })();
        report.check(str_field(&case, "test_name"), result);
    }
    report.finish(4);
}

/// Maps the reference's error strings to our variants. Panics on a string it does not know, so
/// a new kind of vector cannot pass unexamined.
fn matches_reference(reference: &str, e: &BeaconError) -> bool {
    use BeaconError as E;
    use WebSocketField as F;
    match reference {
        "could not decode bech32 string" => {
            matches!(e, E::Bech32(Bech32Error::Padding | Bech32Error::Invalid(_)))
        }
        "unknown human readable part" => matches!(e, E::UnknownHrp(h) if h == "moneyysocket"),
        "invalid beacon TLV" => matches!(e, E::BeaconTlv(TlvError::Truncated { .. })),
        // The reference says "unknown TLV" both for a non-beacon outer record and for an
        // unexpected first record inside a WebSocket location.
        "unknown TLV" => matches!(e, E::NotABeacon(0x99) | E::WebSocket(Ws::UnknownTlv(0x0f))),
        "no TLVs" => matches!(e, E::NoTlvs),
        "invalid TLVs in beacon" => matches!(e, E::InvalidTlvs(_)),
        "unable to decode version from bytes" => {
            matches!(
                e,
                E::FieldLength {
                    field: BeaconField::GeneratorVersion,
                    found: 4
                }
            )
        }
        "missing generator_version TLV" => matches!(e, E::MissingGeneratorVersion),
        "missing shared_seed or role_hint TLV" => matches!(e, E::MissingSharedSeedOrRoleHint),
        "unknown role_hint value" => matches!(e, E::UnknownRoleHint(0xff)),
        "unable to parse role_hint" => matches!(
            e,
            E::FieldLength {
                field: BeaconField::RoleHint,
                found: 0
            }
        ),
        "extra role_hint bytes" => matches!(
            e,
            E::FieldLength {
                field: BeaconField::RoleHint,
                found: 3
            }
        ),
        "missing shared_seed TLV" => matches!(e, E::MissingSharedSeed),
        // The reference reads the seed as two u64s; we report its length.
        "unable to parse shared_seed_hi" => {
            matches!(e, E::FieldLength { field: BeaconField::SharedSeed, found } if *found < 8)
        }
        "unable to parse shared_seed_lo" => {
            matches!(e, E::FieldLength { field: BeaconField::SharedSeed, found } if (8..16).contains(found))
        }
        "extra shared_seed bytes" => {
            matches!(e, E::FieldLength { field: BeaconField::SharedSeed, found } if *found > 16)
        }
        "no locations in location_list" => matches!(e, E::NoLocations),
        "invalid location_list" => matches!(e, E::InvalidLocationList(_)),
        "no known locations in location_list" => matches!(e, E::NoKnownLocations),
        "invalid websocket location TLVs" => matches!(e, E::WebSocket(Ws::InvalidTlvs(_))),
        "no websocket location TLVs" => matches!(e, E::WebSocket(Ws::Empty)),
        "unknown TLV type" => matches!(e, E::WebSocket(Ws::UnknownTlv(0x33))),
        "unable to parse generator_preference" => {
            matches!(
                e,
                E::WebSocket(Ws::FieldLength {
                    field: F::GeneratorPreference,
                    found: 0
                })
            )
        }
        "extra generator_preference bytes" => {
            matches!(
                e,
                E::WebSocket(Ws::FieldLength {
                    field: F::GeneratorPreference,
                    found: 2
                })
            )
        }
        "generator_preference not minimally encoded" => {
            matches!(
                e,
                E::WebSocket(Ws::RedundantDefault(F::GeneratorPreference))
            )
        }
        "missing hostname TLV" => matches!(e, E::WebSocket(Ws::MissingHostname)),
        "invalid hostname" => matches!(e, E::WebSocket(Ws::InvalidHostname(_))),
        "error decoding hostname string" => matches!(e, E::WebSocket(Ws::HostnameNotUtf8)),
        "underrun while popping a u8" => {
            matches!(
                e,
                E::WebSocket(Ws::FieldLength {
                    field: F::UseTls,
                    found: 0
                })
            )
        }
        "unknown use_tls setting" => matches!(e, E::WebSocket(Ws::UnknownUseTls(0x33))),
        "extra use_tls bytes" => matches!(
            e,
            E::WebSocket(Ws::FieldLength {
                field: F::UseTls,
                found: 2
            })
        ),
        "use_tls not minimally encoded" => {
            matches!(e, E::WebSocket(Ws::RedundantDefault(F::UseTls)))
        }
        "extra port bytes" => matches!(e, E::WebSocket(Ws::PortTrailingBytes)),
        "underrun while peeking a uint8" => {
            matches!(
                e,
                E::WebSocket(Ws::Port(BigSizeError::UnexpectedEnd {
                    needed: 1,
                    available: 0
                }))
            )
        }
        "port value too large" => matches!(e, E::WebSocket(Ws::PortTooLarge(u64::MAX))),
        "port not minimally encoded" => matches!(e, E::WebSocket(Ws::RedundantDefault(F::Port))),
        "path not minimally encoded" => matches!(e, E::WebSocket(Ws::RedundantDefault(F::Path))),
        "error decoding path" => matches!(e, E::WebSocket(Ws::PathNotUtf8)),
        other => panic!("no mapping for reference error {other:?}"),
    }
}

#[test]
fn beacon_decode_error_vectors() {
    let mut report = Report::new("02-beacon-decode-error.json");
    for case in load_vectors("02-beacon-decode-error.json") {
        let input = &case["input"];
        let text = str_field(input, "beacon");
        let reference = str_field(&case, "decode_error");
        let result = (|| {
            // Where the vector spells out the data part, check that it is what the text holds,
            // so the case tests what its name says.
            if let (Some(hrp), Some(chunks)) = (
                input["beacon_hrp"].as_str(),
                input["beacon_data_part_chunks"].as_array(),
            ) {
                if !hrp.is_empty() {
                    let joined: String = chunks.iter().filter_map(Value::as_str).collect();
                    let (got_hrp, data) =
                        bech32::decode(text).map_err(|e| format!("vector text: {e}"))?;
                    if got_hrp != hrp || data != hex(&joined) {
                        return Err("data part differs from the vector's chunks".to_owned());
                    }
                }
            }
            match Beacon::from_bech32(text) {
                Ok(b) => Err(format!("decoded, expected {reference:?}: {b:?}")),
                Err(e) if matches_reference(reference, &e) => Ok(()),
                Err(e) => Err(format!("got {e:?}, expected {reference:?}")),
            }
        })();
        report.check(str_field(&case, "test_name"), result);
    }
    report.finish(44);
}
