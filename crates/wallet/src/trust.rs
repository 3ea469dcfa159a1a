//! Which Electrum server a wallet uses and how far it trusts it — seed 003's "sovereignty
//! level", shown to the user beside every balance.
//!
//! Trust does not switch verification off: every server's headers must chain with valid proof
//! of work and every confirmation must carry a merkle proof into those headers. What trust says
//! is who could still deceive the wallet by omission (hiding a payment) or by watching which
//! addresses it asks about.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How far the user trusts the wallet's server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trust {
    /// The user's own node: full validation, nobody else sees the addresses.
    MyNode,
    /// A node run by the user's community: people they know see their addresses.
    Community,
    /// Somebody else's public server: a stranger sees every address and could hide payments.
    ThirdParty,
}

impl Trust {
    /// One line for the user: what this level means for their privacy and safety.
    pub fn explain(self) -> &'static str {
        match self {
            Trust::MyNode => "my node: validated by my own node; my addresses stay with me",
            Trust::Community => {
                "community node: run by people I know; they see my addresses and could hide payments"
            }
            Trust::ThirdParty => {
                "third party: a stranger sees all my addresses and could hide payments; proofs are still checked"
            }
        }
    }
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trust::MyNode => "my-node",
            Trust::Community => "community",
            Trust::ThirdParty => "third-party",
        })
    }
}

impl FromStr for Trust {
    type Err = String;

    fn from_str(s: &str) -> Result<Trust, String> {
        match s {
            "my-node" | "mine" => Ok(Trust::MyNode),
            "community" => Ok(Trust::Community),
            "third-party" | "public" => Ok(Trust::ThirdParty),
            other => Err(format!(
                "unknown trust level {other:?} (my-node, community or third-party)"
            )),
        }
    }
}

/// An Electrum server and the trust placed in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// `tcp://host:port` or `ssl://host:port`.
    pub url: String,
    pub trust: Trust,
    /// For `ssl://` servers with self-signed certificates (moip's own server makes one):
    /// skip certificate validation. Proofs are still verified.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

impl Server {
    pub fn new(url: impl Into<String>, trust: Trust) -> Server {
        Server {
            url: url.into(),
            trust,
            accept_invalid_certs: false,
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.url, self.trust.explain())
    }
}
