//! HTTP Basic authentication as bitcoind does it: a user/password pair, or a cookie file
//! (`__cookie__:<random hex>`) written at start and removed at shutdown.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::ChainError;

/// User name of cookie authentication, as in Core.
pub const COOKIE_USER: &str = "__cookie__";

/// How clients prove who they are.
#[derive(Debug, Clone)]
pub enum RpcAuth {
    /// A fixed user and password (`--rpc-user`/`--rpc-password`).
    UserPass {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// A fresh random password written to a cookie file readable by this user only.
    Cookie {
        /// Where to write the cookie.
        path: PathBuf,
    },
}

/// The credentials a server accepts, once resolved.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub user: String,
    pub password: String,
    pub cookie: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("cookie", &self.cookie)
            .finish()
    }
}

impl Credentials {
    pub(crate) fn resolve(auth: &RpcAuth) -> Result<Credentials, ChainError> {
        match auth {
            RpcAuth::UserPass { user, password } => {
                if user.is_empty() || password.is_empty() || user.contains(':') {
                    return Err(ChainError::Invalid(
                        "RPC user must be non-empty without ':' and the password non-empty".into(),
                    ));
                }
                Ok(Credentials {
                    user: user.clone(),
                    password: password.clone(),
                    cookie: None,
                })
            }
            RpcAuth::Cookie { path } => {
                let secret: [u8; 32] = rand::random();
                let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
                write_private(path, format!("{COOKIE_USER}:{password}").as_bytes())?;
                Ok(Credentials {
                    user: COOKIE_USER.into(),
                    password,
                    cookie: Some(path.clone()),
                })
            }
        }
    }

    /// Checks an `Authorization` header value in time independent of where it differs.
    pub(crate) fn check(&self, header: Option<&str>) -> bool {
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", self.user, self.password);
        constant_time_eq(&decoded, expected.as_bytes())
    }

    pub(crate) fn remove_cookie(&self) {
        if let Some(path) = &self.cookie {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff));
    }
    diff == 0
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), ChainError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

/// Reads a cookie file into a user and password (for clients such as [`crate::BitcoindRpc`]).
pub fn read_cookie(path: &Path) -> Result<(String, String), ChainError> {
    let text = std::fs::read_to_string(path)?;
    let (user, password) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| ChainError::Invalid(format!("malformed cookie file {}", path.display())))?;
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_checks() {
        let creds = Credentials {
            user: "u".into(),
            password: "p".into(),
            cookie: None,
        };
        let good = base64::engine::general_purpose::STANDARD.encode("u:p");
        assert!(creds.check(Some(&format!("Basic {good}"))));
        let bad = base64::engine::general_purpose::STANDARD.encode("u:q");
        assert!(!creds.check(Some(&format!("Basic {bad}"))));
        assert!(!creds.check(Some("Bearer x")));
        assert!(!creds.check(None));
        assert!(!creds.check(Some("Basic !!!")));
    }

    #[test]
    fn cookie_round_trips_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".cookie");
        let creds = Credentials::resolve(&RpcAuth::Cookie { path: path.clone() }).expect("cookie");
        let (user, password) = read_cookie(&path).expect("read");
        assert_eq!(
            (user.as_str(), password.as_str()),
            (COOKIE_USER, creds.password.as_str())
        );
        assert_eq!(password.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        creds.remove_cookie();
        assert!(!path.exists());
    }
}
