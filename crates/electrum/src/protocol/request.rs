//! Parsing a method name and its parameters into a typed [`Request`] (electrs' "parse into a
//! closed enum, then dispatch"). Parameters may be positional or named, with the names of the
//! protocol documentation; anything else is `INVALID_PARAMS` or `BAD_REQUEST`.

use bitcoin::Txid;
use moip_chain::FeeMode;
use serde_json::Value;

use super::{ProtocolVersion, RpcError, METHOD_NOT_FOUND};
use crate::types::ScriptHash;

/// A request, with its parameters checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    ServerVersion {
        client: String,
        protocol: Option<Value>,
        token: Option<String>,
    },
    ServerFeatures,
    ServerBanner,
    DonationAddress,
    PeersSubscribe,
    AddPeer(Value),
    Ping,
    HeadersSubscribe,
    BlockHeader {
        height: u32,
        cp_height: u32,
    },
    BlockHeaders {
        start: u32,
        count: u32,
        cp_height: u32,
    },
    EstimateFee {
        blocks: u16,
        mode: Option<FeeMode>,
    },
    RelayFee,
    FeeHistogram,
    MempoolInfo,
    Balance(ScriptHash),
    /// `from`/`to` heights page the history (Fulcrum's extension); `to` −1 means the tip.
    History {
        scripthash: ScriptHash,
        from: Option<u32>,
        to: Option<i64>,
    },
    Mempool(ScriptHash),
    ListUnspent(ScriptHash),
    Subscribe(ScriptHash),
    Unsubscribe(ScriptHash),
    Broadcast(String),
    BroadcastPackage {
        txs: Vec<String>,
        verbose: bool,
    },
    TxGet {
        txid: Txid,
        verbose: bool,
    },
    TxMerkle {
        txid: Txid,
        height: Option<u32>,
    },
    IdFromPos {
        height: u32,
        pos: u32,
        merkle: bool,
    },
}

impl Request {
    /// Relative cost, in ElectrumX's units, charged before the request runs.
    pub fn base_cost(&self) -> f64 {
        match self {
            Request::ServerVersion { .. } => 0.5,
            Request::Ping
            | Request::ServerFeatures
            | Request::ServerBanner
            | Request::DonationAddress => 0.1,
            Request::BlockHeader { cp_height, .. } => {
                if *cp_height > 0 {
                    1.25
                } else {
                    0.25
                }
            }
            Request::BlockHeaders {
                count, cp_height, ..
            } => f64::from(*count) / 50.0 + if *cp_height > 0 { 1.0 } else { 0.0 },
            Request::Broadcast(hex) => 0.25 + hex.len() as f64 / 5000.0,
            Request::BroadcastPackage { txs, .. } => {
                0.25 + txs.iter().map(String::len).sum::<usize>() as f64 / 5000.0
            }
            _ => 1.0,
        }
    }
}

/// Positional or named arguments of one call.
struct Args<'a> {
    method: &'a str,
    values: Vec<Option<&'a Value>>,
}

impl<'a> Args<'a> {
    fn new(method: &'a str, params: &'a Value, names: &[&str]) -> Result<Args<'a>, RpcError> {
        let values = match params {
            Value::Null => Vec::new(),
            Value::Array(list) => list.iter().map(Some).collect(),
            Value::Object(map) => {
                if let Some(unknown) = map.keys().find(|k| !names.contains(&k.as_str())) {
                    return Err(RpcError::invalid_params(format!(
                        "{method}: unknown parameter {unknown:?}"
                    )));
                }
                names.iter().map(|n| map.get(*n)).collect()
            }
            _ => {
                return Err(RpcError::invalid_params(
                    "params must be an array or an object",
                ))
            }
        };
        Ok(Args { method, values })
    }

    fn at_most(&self, n: usize) -> Result<(), RpcError> {
        let given = self
            .values
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        if given > n {
            return Err(RpcError::invalid_params(format!(
                "{}: too many arguments ({given} > {n})",
                self.method
            )));
        }
        Ok(())
    }

    fn get(&self, i: usize) -> Option<&'a Value> {
        self.values
            .get(i)
            .copied()
            .flatten()
            .filter(|v| !v.is_null())
    }

    fn required(&self, i: usize, name: &str) -> Result<&'a Value, RpcError> {
        self.get(i).ok_or_else(|| {
            RpcError::invalid_params(format!("{}: missing argument {name}", self.method))
        })
    }

    fn u32(&self, i: usize, name: &str) -> Result<u32, RpcError> {
        let v = self.required(i, name)?;
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                RpcError::bad_request(format!("{name} must be a non-negative integer: {v}"))
            })
    }

    fn opt_u32(&self, i: usize, name: &str) -> Result<Option<u32>, RpcError> {
        self.get(i).map(|_| self.u32(i, name)).transpose()
    }

    fn bool(&self, i: usize, name: &str) -> Result<bool, RpcError> {
        match self.get(i) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(RpcError::bad_request(format!(
                "{name} must be a boolean: {v}"
            ))),
        }
    }

    fn string(&self, i: usize, name: &str) -> Result<&'a str, RpcError> {
        let v = self.required(i, name)?;
        v.as_str()
            .ok_or_else(|| RpcError::bad_request(format!("{name} must be a string: {v}")))
    }

    fn scripthash(&self, i: usize) -> Result<ScriptHash, RpcError> {
        self.string(i, "scripthash")?
            .parse()
            .map_err(|e: crate::types::BadScriptHash| RpcError::bad_request(e.to_string()))
    }

    fn txid(&self, i: usize) -> Result<Txid, RpcError> {
        let s = self.string(i, "tx_hash")?;
        if s.len() != 64 {
            return Err(RpcError::bad_request(format!(
                "{s:?} is not a valid transaction hash"
            )));
        }
        s.parse()
            .map_err(|_| RpcError::bad_request(format!("{s:?} is not a valid transaction hash")))
    }
}

/// Parses one call for a session speaking `version`.
pub fn parse_request(
    method: &str,
    params: &Value,
    version: ProtocolVersion,
) -> Result<Request, RpcError> {
    let v16 = version >= ProtocolVersion::V1_6;
    let unknown = || RpcError::new(METHOD_NOT_FOUND, format!("unknown method {method:?}"));
    let sh_method = |names: &[&str]| -> Result<ScriptHash, RpcError> {
        let a = Args::new(method, params, names)?;
        a.at_most(1)?;
        a.scripthash(0)
    };
    let no_args = || -> Result<(), RpcError> { Args::new(method, params, &[])?.at_most(0) };
    Ok(match method {
        "server.version" => {
            // 1.6: extra arguments must be tolerated; a third may carry an auth token.
            let a = Args::new(
                method,
                params,
                &["client_name", "protocol_version", "token"],
            )?;
            let client = match a.get(0) {
                None => String::new(),
                Some(v) => v
                    .as_str()
                    .ok_or_else(|| RpcError::bad_request("client_name must be a string"))?
                    .chars()
                    .take(100)
                    .collect(),
            };
            Request::ServerVersion {
                client,
                protocol: a.get(1).cloned(),
                token: a.get(2).and_then(Value::as_str).map(str::to_owned),
            }
        }
        "server.features" => no_args().map(|_| Request::ServerFeatures)?,
        "server.banner" => no_args().map(|_| Request::ServerBanner)?,
        "server.donation_address" => no_args().map(|_| Request::DonationAddress)?,
        "server.peers.subscribe" => no_args().map(|_| Request::PeersSubscribe)?,
        "server.add_peer" => {
            let a = Args::new(method, params, &["features"])?;
            a.at_most(1)?;
            Request::AddPeer(a.required(0, "features")?.clone())
        }
        "server.ping" => no_args().map(|_| Request::Ping)?,
        "blockchain.headers.subscribe" => no_args().map(|_| Request::HeadersSubscribe)?,
        "blockchain.block.header" => {
            let a = Args::new(method, params, &["height", "cp_height"])?;
            a.at_most(2)?;
            Request::BlockHeader {
                height: a.u32(0, "height")?,
                cp_height: a.opt_u32(1, "cp_height")?.unwrap_or(0),
            }
        }
        "blockchain.block.headers" => {
            let a = Args::new(method, params, &["start_height", "count", "cp_height"])?;
            a.at_most(3)?;
            Request::BlockHeaders {
                start: a.u32(0, "start_height")?,
                count: a.u32(1, "count")?,
                cp_height: a.opt_u32(2, "cp_height")?.unwrap_or(0),
            }
        }
        "blockchain.estimatefee" => {
            let a = Args::new(method, params, &["number", "mode"])?;
            a.at_most(if v16 { 2 } else { 1 })?;
            let number = a.required(0, "number")?;
            let blocks = number
                .as_u64()
                .filter(|n| *n >= 1)
                .map(|n| n.min(1008) as u16)
                .ok_or_else(|| {
                    RpcError::bad_request(format!("number must be a positive integer: {number}"))
                })?;
            let mode = match a.get(1) {
                None => None,
                Some(m) => Some(
                    m.as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| RpcError::bad_request(format!("invalid mode: {m}")))?,
                ),
            };
            Request::EstimateFee { blocks, mode }
        }
        "blockchain.relayfee" if !v16 => no_args().map(|_| Request::RelayFee)?,
        "mempool.get_fee_histogram" => no_args().map(|_| Request::FeeHistogram)?,
        "mempool.get_info" if v16 => no_args().map(|_| Request::MempoolInfo)?,
        "blockchain.scripthash.get_balance" => Request::Balance(sh_method(&["scripthash"])?),
        "blockchain.scripthash.get_history" => {
            let a = Args::new(method, params, &["scripthash", "from_height", "to_height"])?;
            a.at_most(3)?;
            let to = match a.get(2) {
                None => None,
                Some(v) => Some(v.as_i64().filter(|n| *n >= -1).ok_or_else(|| {
                    RpcError::bad_request(format!("to_height must be -1 or a height: {v}"))
                })?),
            };
            Request::History {
                scripthash: a.scripthash(0)?,
                from: a.opt_u32(1, "from_height")?,
                to,
            }
        }
        "blockchain.scripthash.get_mempool" => Request::Mempool(sh_method(&["scripthash"])?),
        "blockchain.scripthash.listunspent" => Request::ListUnspent(sh_method(&["scripthash"])?),
        "blockchain.scripthash.subscribe" => Request::Subscribe(sh_method(&["scripthash"])?),
        "blockchain.scripthash.unsubscribe" if version >= ProtocolVersion::V1_4_2 => {
            Request::Unsubscribe(sh_method(&["scripthash"])?)
        }
        "blockchain.transaction.broadcast" => {
            let a = Args::new(method, params, &["raw_tx"])?;
            a.at_most(1)?;
            Request::Broadcast(a.string(0, "raw_tx")?.to_owned())
        }
        "blockchain.transaction.broadcast_package" if v16 => {
            let a = Args::new(method, params, &["raw_txs", "verbose"])?;
            a.at_most(2)?;
            let raw = a
                .required(0, "raw_txs")?
                .as_array()
                .ok_or_else(|| RpcError::bad_request("raw_txs must be an array"))?;
            let txs = raw
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| RpcError::bad_request("raw_txs must be hex strings"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Request::BroadcastPackage {
                txs,
                verbose: a.bool(1, "verbose")?,
            }
        }
        "blockchain.transaction.get" => {
            let a = Args::new(method, params, &["tx_hash", "verbose"])?;
            a.at_most(2)?;
            Request::TxGet {
                txid: a.txid(0)?,
                verbose: a.bool(1, "verbose")?,
            }
        }
        "blockchain.transaction.get_merkle" => {
            let a = Args::new(method, params, &["tx_hash", "height"])?;
            a.at_most(2)?;
            Request::TxMerkle {
                txid: a.txid(0)?,
                height: a.opt_u32(1, "height")?,
            }
        }
        "blockchain.transaction.id_from_pos" => {
            let a = Args::new(method, params, &["height", "tx_pos", "merkle"])?;
            a.at_most(3)?;
            Request::IdFromPos {
                height: a.u32(0, "height")?,
                pos: a.u32(1, "tx_pos")?,
                merkle: a.bool(2, "merkle")?,
            }
        }
        _ => return Err(unknown()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BAD_REQUEST, INVALID_PARAMS};
    use serde_json::json;

    const SH: &str = "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161";

    #[test]
    fn positional_and_named_params() {
        let v = ProtocolVersion::V1_6;
        let a = parse_request("blockchain.block.header", &json!([5, 10]), v).expect("ok");
        let b = parse_request(
            "blockchain.block.header",
            &json!({"height": 5, "cp_height": 10}),
            v,
        )
        .expect("ok");
        assert_eq!(a, b);
        assert_eq!(
            a,
            Request::BlockHeader {
                height: 5,
                cp_height: 10
            }
        );
        let e =
            parse_request("blockchain.block.header", &json!({"heigth": 5}), v).expect_err("typo");
        assert_eq!(e.code, INVALID_PARAMS);
    }

    #[test]
    fn versions_gate_methods() {
        assert!(parse_request("blockchain.relayfee", &json!([]), ProtocolVersion::V1_4).is_ok());
        let e = parse_request("blockchain.relayfee", &json!([]), ProtocolVersion::V1_6)
            .expect_err("removed in 1.6");
        assert_eq!(e.code, METHOD_NOT_FOUND);
        assert!(parse_request("mempool.get_info", &json!([]), ProtocolVersion::V1_4).is_err());
        assert!(parse_request(
            "blockchain.scripthash.unsubscribe",
            &json!([SH]),
            ProtocolVersion::V1_4
        )
        .is_err());
        assert!(parse_request(
            "blockchain.scripthash.unsubscribe",
            &json!([SH]),
            ProtocolVersion::V1_4_2
        )
        .is_ok());
    }

    #[test]
    fn bad_input_gets_typed_errors() {
        let v = ProtocolVersion::V1_4;
        assert_eq!(
            parse_request("blockchain.scripthash.get_balance", &json!(["xyz"]), v)
                .expect_err("bad")
                .code,
            BAD_REQUEST
        );
        assert_eq!(
            parse_request("blockchain.scripthash.get_balance", &json!([]), v)
                .expect_err("missing")
                .code,
            INVALID_PARAMS
        );
        assert_eq!(
            parse_request("blockchain.scripthash.get_balance", &json!([SH, 1]), v)
                .expect_err("extra")
                .code,
            INVALID_PARAMS
        );
        assert_eq!(
            parse_request("blockchain.block.header", &json!([-1]), v)
                .expect_err("negative")
                .code,
            BAD_REQUEST
        );
        assert_eq!(
            parse_request("blockchain.block.header", &json!(["1"]), v)
                .expect_err("string")
                .code,
            BAD_REQUEST
        );
        assert_eq!(
            parse_request("blockchain.transaction.get", &json!(["00"]), v)
                .expect_err("short")
                .code,
            BAD_REQUEST
        );
        assert_eq!(
            parse_request("no.such.method", &json!([]), v)
                .expect_err("unknown")
                .code,
            METHOD_NOT_FOUND
        );
        assert_eq!(
            parse_request("server.ping", &json!(7), v)
                .expect_err("scalar params")
                .code,
            INVALID_PARAMS
        );
        // 1.6 tolerates extra server.version arguments.
        assert!(parse_request("server.version", &json!(["c", "1.6", "token", "extra"]), v).is_ok());
    }
}
