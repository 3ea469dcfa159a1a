//! Logged-in browsers. A session is a random token in an `HttpOnly`, `SameSite=Strict` cookie;
//! the node remembers who it is and how that person signs:
//!
//! - a **local user** (a name and a password on this node): the key is sealed under the
//!   user's own password in the data directory and held in memory while the session lasts,
//!   so the node signs that user's actions;
//! - a **NIP-07 signer** (a browser extension): the node knows only the public key, proven at
//!   login by signing a challenge; every action is signed in the browser;
//! - the **operator**, who gave the token from the data directory: pairing apps needs it.
//!
//! Each form carries the session's CSRF token as well; the cookie alone never acts.

use std::collections::HashMap;
use std::sync::Mutex;

use moip_assets::ledger::AccountId;
use nostr_sdk::Keys;

use super::throttle::LoginThrottle;
use crate::util::lock;

/// The cookie's name.
pub const COOKIE: &str = "moip_session";

/// How long a session lasts, in seconds.
pub const SESSION_SECS: u64 = 12 * 3_600;

/// Most sessions held; the oldest goes when a new one would pass it.
pub const MAX_SESSIONS: usize = 10_000;

/// Most login challenges outstanding.
pub const MAX_CHALLENGES: usize = 10_000;

/// How long a login challenge may be answered, in seconds.
pub const CHALLENGE_SECS: u64 = 300;

/// How a session's actions are signed.
#[derive(Clone)]
pub enum Signer {
    /// By the node, with the local user's key.
    Local {
        /// The user's name on this node.
        name: String,
        /// The key.
        keys: Keys,
    },
    /// In the browser, by a NIP-07 extension.
    Browser,
    /// Nobody: the operator's session acts on the node, not in the community.
    None,
}

/// One logged-in browser.
#[derive(Clone)]
pub struct Session {
    /// Who (for an operator-only session, the Work service's key).
    pub account: Option<AccountId>,
    /// How it signs.
    pub signer: Signer,
    /// Whether it may pair apps.
    pub operator: bool,
    /// The token every form must carry.
    pub csrf: String,
    /// A message for the next page (`true`: it went well).
    pub flash: Option<(bool, String)>,
    /// When it ends (Unix seconds).
    pub expires: u64,
}

/// The sessions, the outstanding login challenges and the limits on local logins.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    challenges: Mutex<HashMap<String, u64>>,
    /// How fast local users' passwords may be tried.
    pub logins: LoginThrottle,
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Starts a session; returns its token.
    pub fn start(
        &self,
        account: Option<AccountId>,
        signer: Signer,
        operator: bool,
        now: u64,
    ) -> String {
        let token = random_token();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            token.clone(),
            Session {
                account,
                signer,
                operator,
                csrf: random_token(),
                flash: None,
                expires: now + SESSION_SECS,
            },
        );
        token
    }

    /// The session of `token`, unless it has ended.
    pub fn get(&self, token: &str, now: u64) -> Option<Session> {
        lock(&self.sessions)
            .get(token)
            .filter(|s| s.expires > now)
            .cloned()
    }

    /// Takes the session's flash message (shown once).
    pub fn take_flash(&self, token: &str) -> Option<(bool, String)> {
        lock(&self.sessions).get_mut(token)?.flash.take()
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, token: &str, ok: bool, text: String) {
        if let Some(s) = lock(&self.sessions).get_mut(token) {
            s.flash = Some((ok, text));
        }
    }

    /// Ends a session.
    pub fn end(&self, token: &str) {
        lock(&self.sessions).remove(token);
    }

    /// A new login challenge for a NIP-07 signer.
    pub fn challenge(&self, now: u64) -> String {
        let challenge = random_token();
        let mut challenges = lock(&self.challenges);
        challenges.retain(|_, at| *at + CHALLENGE_SECS > now);
        if challenges.len() >= MAX_CHALLENGES {
            if let Some(oldest) = challenges
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
            {
                challenges.remove(&oldest);
            }
        }
        challenges.insert(challenge.clone(), now);
        challenge
    }

    /// Uses up `challenge`: true when it was issued and is still fresh.
    pub fn redeem_challenge(&self, challenge: &str, now: u64) -> bool {
        lock(&self.challenges)
            .remove(challenge)
            .is_some_and(|at| at + CHALLENGE_SECS > now)
    }
}

/// Whether a request was sent by another site's page — a cross-site form or script posting to
/// the node — as the browser says it: its `Sec-Fetch-Site` is not `same-origin` (or `none`, a
/// request the user made); or, from a browser too old to send that, its `Origin` names another
/// host than the `Host` it was sent to (or is `null`, as a sandboxed frame's is). Browsers send
/// one or the other with a POST; a client with neither is not a browser, so no visitor's
/// browser can be made to send it. (`Sec-Fetch-Site` decides when present: a browser may send
/// `Origin: null` for its own site's form under a strict referrer policy.) The login forms refuse such requests: otherwise another site could log a visitor in as
/// the attacker (login CSRF), and what the visitor then deposits or does would land in the
/// attacker's account. The `SameSite=Strict` cookie already keeps other sites out of an
/// existing session; this keeps them from starting one.
pub fn cross_site(headers: &axum::http::HeaderMap) -> bool {
    use axum::http::header;
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    !matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// The session token in a `Cookie` header.
pub fn token_in(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_and_challenges_are_used_once() {
        let sessions = Sessions::default();
        let token = sessions.start(None, Signer::None, true, 1_000);
        assert!(sessions.get(&token, 1_001).is_some());
        assert!(sessions.get(&token, 1_000 + SESSION_SECS).is_none());
        sessions.flash(&token, true, "done".into());
        assert_eq!(sessions.take_flash(&token), Some((true, "done".into())));
        assert_eq!(sessions.take_flash(&token), None);
        sessions.end(&token);
        assert!(sessions.get(&token, 1_001).is_none());

        let c = sessions.challenge(1_000);
        assert!(sessions.redeem_challenge(&c, 1_010));
        assert!(!sessions.redeem_challenge(&c, 1_010), "used once");
        let late = sessions.challenge(1_000);
        assert!(!sessions.redeem_challenge(&late, 1_000 + CHALLENGE_SECS));
    }

    #[test]
    fn posts_from_other_sites_are_told_apart() {
        use axum::http::HeaderMap;
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, value.parse().expect("value"));
            }
            h
        };
        let host = ("host", "127.0.0.1:8080");
        assert!(
            !cross_site(&headers(&[host])),
            "no browser headers: not a browser"
        );
        assert!(!cross_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!cross_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(cross_site(&headers(&[host, ("origin", "null")])));
        assert!(
            !cross_site(&headers(&[
                host,
                ("origin", "null"),
                ("sec-fetch-site", "same-origin")
            ])),
            "a browser's own form under a strict referrer policy"
        );
        assert!(cross_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8081")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(
            cross_site(&headers(&[("origin", "http://127.0.0.1:8080")])),
            "no host"
        );
    }

    #[test]
    fn the_cookie_is_found_among_others_and_checked() {
        let t = "ab".repeat(32);
        assert_eq!(
            token_in(&format!("a=1; {COOKIE}={t}; b=2")),
            Some(t.as_str())
        );
        assert_eq!(token_in(&format!("{COOKIE}=short")), None);
        assert_eq!(token_in("other=1"), None);
    }
}
