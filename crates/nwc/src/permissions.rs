//! What a connection may do, chosen when it is paired, by the scopes Alby Hub offers: `pay`,
//! `receive`, `read` and `sign`. A request for a method outside its permissions is refused
//! `RESTRICTED` and changes nothing.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One permission: a group of NIP-47 methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// `pay_invoice`, `pay_keysend`, `multi_pay_invoice`, `multi_pay_keysend`; the
    /// `payment_sent` notification.
    Pay,
    /// `make_invoice`, `make_hold_invoice`, `settle_hold_invoice`, `cancel_hold_invoice`; the
    /// `payment_received` and `hold_invoice_accepted` notifications.
    Receive,
    /// `get_info`, `get_balance`, `get_budget`, `lookup_invoice`, `list_transactions`.
    Read,
    /// `sign_message`: the node's signature, with which an app can act as the node's operator
    /// wherever a node signature logs one in. Never granted by default.
    Sign,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 4] = [
        Permission::Pay,
        Permission::Receive,
        Permission::Read,
        Permission::Sign,
    ];

    /// The NIP-47 methods it permits.
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Permission::Pay => &[
                "pay_invoice",
                "pay_keysend",
                "multi_pay_invoice",
                "multi_pay_keysend",
            ],
            Permission::Receive => &[
                "make_invoice",
                "make_hold_invoice",
                "settle_hold_invoice",
                "cancel_hold_invoice",
            ],
            Permission::Read => &[
                "get_info",
                "get_balance",
                "get_budget",
                "lookup_invoice",
                "list_transactions",
            ],
            Permission::Sign => &["sign_message"],
        }
    }

    /// The notifications it lets a connection receive.
    pub fn notifications(self) -> &'static [&'static str] {
        match self {
            Permission::Pay => &["payment_sent"],
            Permission::Receive => &["payment_received", "hold_invoice_accepted"],
            Permission::Read | Permission::Sign => &[],
        }
    }

    /// The permission that permits `method`, if any.
    pub fn of_method(method: &str) -> Option<Permission> {
        Permission::ALL
            .into_iter()
            .find(|p| p.methods().contains(&method))
    }
}

/// A permission name that is not one of `pay`, `receive`, `read`, `sign`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("permission {0:?}: one of pay, receive, read, sign")]
pub struct UnknownPermission(pub String);

impl std::str::FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(name: &str) -> Result<Permission, UnknownPermission> {
        match name.trim() {
            "pay" => Ok(Permission::Pay),
            "receive" => Ok(Permission::Receive),
            "read" => Ok(Permission::Read),
            "sign" => Ok(Permission::Sign),
            other => Err(UnknownPermission(other.to_owned())),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::Pay => "pay",
            Permission::Receive => "receive",
            Permission::Read => "read",
            Permission::Sign => "sign",
        })
    }
}

/// The permissions of a connection paired without naming any, and of one stored before
/// connections had permissions: `pay`, `receive` and `read` — everything but `sign`.
pub fn default_permissions() -> BTreeSet<Permission> {
    [Permission::Pay, Permission::Receive, Permission::Read].into()
}

/// Parses a comma-separated list (`pay,read`).
///
/// # Errors
/// [`UnknownPermission`] for a name that is not a permission (an empty list is an empty set).
pub fn parse_permissions(list: &str) -> Result<BTreeSet<Permission>, UnknownPermission> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_one_permission_and_names_round_trip() {
        for method in crate::METHODS {
            assert!(Permission::of_method(method).is_some(), "{method}");
        }
        assert_eq!(
            Permission::of_method("sign_message"),
            Some(Permission::Sign)
        );
        for p in Permission::ALL {
            assert_eq!(p.to_string().parse::<Permission>(), Ok(p));
        }
        assert_eq!(
            parse_permissions("pay, read").expect("two names"),
            [Permission::Pay, Permission::Read].into()
        );
        assert!(parse_permissions("pay,spend").is_err());
        assert!(!default_permissions().contains(&Permission::Sign));
    }

    #[test]
    fn a_connection_stored_without_permissions_may_do_what_it_could_before() {
        let stored = serde_json::json!({
            "name": "till",
            "client": crate::Keys::generate().public_key().to_hex(),
            "budget": null,
            "spent_msat": 0,
            "period_start": 1,
            "revoked": false,
            "created_at": 1,
        });
        let old: crate::Connection = serde_json::from_value(stored).expect("an old connection");
        assert_eq!(old.permissions, None);
        assert_eq!(old.permitted(), default_permissions());
        assert!(
            old.permits("pay_invoice") && old.permits("make_invoice") && old.permits("get_info")
        );
        assert!(!old.permits("sign_message"));
        let back = serde_json::to_value(&old).expect("json");
        assert!(
            back.get("permissions").is_none(),
            "written back as it was: {back}"
        );
    }
}
