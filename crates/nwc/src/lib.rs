//! moip-nwc: a Nostr Wallet Connect (NIP-47) wallet service over any
//! [`PaymentRail`](moip_lightning::PaymentRail).
//!
//! Apps (point-of-sale tills, tipping buttons, the Work protocol's payout bots) get a
//! connection URI each; the service listens for their signed, encrypted requests on Nostr
//! relays and pays, invoices, looks up and notifies through the community's Lightning node.
//! Each connection has its own key, its own budget and can be revoked alone.
//!
//! - [`envelope`]: which encryption a request uses (NIP-44 v2, or NIP-04 for legacy clients),
//!   opening requests and sealing replies — pure.
//! - [`connections`]: connections, budgets renewing by calendar period, expiry and
//!   revocation — pure, persisted as JSON.
//! - [`service`]: the running service on a relay pool (rust-nostr's `nostr-sdk`).

pub mod accounts;
pub mod connections;
pub mod envelope;
pub mod error;
pub mod permissions;
pub mod service;

pub use accounts::{AccountRefusal, AppAccounts};
pub use connections::{
    Budget, Connection, ConnectionStore, DocumentStore, InFlightPayment, MadeInvoice, Renewal,
    StoreLocation, UnknownRenewal,
};
pub use error::NwcError;
pub use nostr_sdk::nips::nip47::NostrWalletConnectURI;
pub use nostr_sdk::{Keys, PublicKey};
pub use permissions::{default_permissions, parse_permissions, Permission, UnknownPermission};
pub use service::{get_info_methods, uri_qr, NwcConfig, NwcService, METHODS, NOTIFICATIONS};
