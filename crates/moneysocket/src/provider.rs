//! The provider role: a wallet serving consumers through a relay, one socket per beacon.
//!
//! The crate holds no wallet: a [`ProviderBackend`] supplies balances, invoices and payments
//! (moip implements it on its Lightning node). An [`Account`] is one wallet as consumers see it:
//! its uuid, its balance as a wad, and every beacon (nexus) connected to it. Whatever changes
//! the balance — a payment made for one consumer, an invoice of another paid — is announced with
//! `NOTIFY_PROVIDER` to every nexus of the account, so two apps on one account stay in step.
//!
//! Requests are answered in the v0 way: `REQUEST_PROVIDER` → `NOTIFY_PROVIDER`,
//! `REQUEST_PING` → `NOTIFY_PONG`, `REQUEST_INVOICE` → `NOTIFY_INVOICE`, `REQUEST_PAY` →
//! `NOTIFY_PREIMAGE` once paid; failures → `NOTIFY_ERROR` referencing the request. When an
//! invoice a consumer asked for is paid, that consumer gets `NOTIFY_PREIMAGE` referencing its
//! invoice request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::client::{connect, ClientConfig, ClientError, OutgoingSocket};
use crate::v0::message::{Body, Message, NotificationKind, Preimage, RequestKind};
use crate::v0::provider_info::ProviderInfo;
use crate::v0::wad::Wad;
use crate::SharedSeed;

/// What a provider needs from a wallet.
#[async_trait::async_trait]
pub trait ProviderBackend: Send + Sync + 'static {
    /// What the consumers may spend, in msat.
    async fn balance_msat(&self) -> Result<u64, String>;
    /// A BOLT11 invoice for `msats`, and its payment hash.
    async fn invoice(&self, msats: u64) -> Result<(String, [u8; 32]), String>;
    /// Pays `bolt11`; the preimage and the routing fee in msat.
    async fn pay(&self, bolt11: &str) -> Result<([u8; 32], u64), String>;
    /// Payments received: (payment hash, preimage). A subscription starting now.
    fn received(&self) -> broadcast::Receiver<([u8; 32], [u8; 32])>;
}

/// How balances are shown: in bitcoin only, or also in a fiat denomination at a configured rate.
#[derive(Clone, Debug)]
pub enum Denomination {
    /// Millisatoshis, as the references do.
    Bitcoin,
    /// A fiat currency at `units_per_btc` (e.g. 60 000 for USD), shown with `decimals`.
    Fiat {
        /// ISO 4217 code, e.g. "USD".
        code: String,
        /// ISO 4217 number, e.g. 840.
        iso_num: u16,
        /// Currency units for one bitcoin.
        units_per_btc: f64,
        /// Decimals to display.
        decimals: u8,
        /// The currency's symbol.
        symbol: String,
    },
}

impl Denomination {
    /// The balance as a wad.
    pub fn wad(&self, msats: u64) -> Wad {
        match self {
            Denomination::Bitcoin => Wad::bitcoin(msats),
            Denomination::Fiat {
                code,
                iso_num,
                units_per_btc,
                decimals,
                symbol,
            } => {
                let units = msats as f64 / 1e11 * units_per_btc;
                let fields = crate::v0::wad::WadFields {
                    msats,
                    asset_stable: true,
                    asset_units: serde_json::Number::from_f64(units)
                        .unwrap_or_else(|| serde_json::Number::from(0)),
                    code: code.clone(),
                    countries: None,
                    decimals: Some(*decimals),
                    iso_num: Some(*iso_num),
                    name: None,
                    symbol: Some(symbol.clone()),
                };
                // A rate that makes no valid wad (negative, absurd) falls back to bitcoin.
                Wad::new(fields).unwrap_or_else(|_| Wad::bitcoin(msats))
            }
        }
    }
}

/// A wallet as its consumers see it.
pub struct Account {
    uuid: Uuid,
    backend: Arc<dyn ProviderBackend>,
    denomination: Denomination,
    /// Balance changes, to every nexus of the account.
    updates: broadcast::Sender<()>,
}

impl Account {
    /// An account with a fresh uuid.
    pub fn new(backend: Arc<dyn ProviderBackend>, denomination: Denomination) -> Arc<Account> {
        Arc::new(Account {
            uuid: crate::ids::random_v4(),
            backend,
            denomination,
            updates: broadcast::channel(64).0,
        })
    }

    /// The account's uuid (the same to every consumer).
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    async fn info(&self) -> Result<ProviderInfo, String> {
        let msats = self.backend.balance_msat().await?;
        Ok(ProviderInfo {
            account_uuid: self.uuid,
            payer: true,
            payee: true,
            wad: Some(self.denomination.wad(msats)),
        })
    }
}

/// A beacon's limit: what consumers on it may spend in total, routing fees included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpendingLimit {
    /// `None`: no limit.
    pub max_msat: Option<u64>,
}

/// Why serving a beacon stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The relay connection failed or closed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One nexus: the account served on one beacon.
struct Nexus {
    account: Arc<Account>,
    limit: SpendingLimit,
    spent_msat: Mutex<u64>,
    /// Invoices asked for on this nexus: payment hash → the invoice request's uuid.
    invoices: Mutex<HashMap<[u8; 32], Uuid>>,
}

/// Serves `account` on the beacon `seed` at the relay `url` until the connection ends.
///
/// # Errors
/// [`ProviderError::Client`] when the relay cannot be reached or the connection breaks.
pub async fn serve(
    url: &str,
    seed: SharedSeed,
    account: Arc<Account>,
    limit: SpendingLimit,
    config: &ClientConfig,
) -> Result<(), ProviderError> {
    let socket = connect(url, seed, config).await?;
    serve_socket(socket, account, limit).await
}

/// [`serve`] on a socket that has already rendezvoused.
///
/// # Errors
/// [`ProviderError::Client`] when the connection breaks.
pub async fn serve_socket(
    mut socket: OutgoingSocket,
    account: Arc<Account>,
    limit: SpendingLimit,
) -> Result<(), ProviderError> {
    let nexus = Arc::new(Nexus {
        account: Arc::clone(&account),
        limit,
        spent_msat: Mutex::new(0),
        invoices: Mutex::new(HashMap::new()),
    });
    let mut updates = account.updates.subscribe();
    let mut received = account.backend.received();
    // Answers are produced by tasks (a payment takes a while) and sent from this loop, which
    // owns the socket.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(64);
    loop {
        tokio::select! {
            message = socket.recv() => {
                let Body::Request(request) = message?.body else { continue };
                let (nexus, out) = (Arc::clone(&nexus), out_tx.clone());
                tokio::spawn(async move {
                    for reply in nexus.answer(request.request_uuid, request.kind).await {
                        if out.send(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Some(reply) = out_rx.recv() => socket.send(&reply).await?,
            update = updates.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = update {
                    continue;
                }
                if let Ok(info) = account.info().await {
                    socket.send(&Message::notification(None, NotificationKind::Provider(info))).await?;
                }
            }
            paid = received.recv() => {
                let Ok((hash, preimage)) = paid else { continue };
                let reference = lock(&nexus.invoices).remove(&hash);
                if let Some(reference) = reference {
                    let kind = NotificationKind::Preimage {
                        preimage: Preimage::from_bytes(preimage),
                        ext: None,
                    };
                    socket.send(&Message::notification(Some(reference), kind)).await?;
                    let _ = account.updates.send(());
                }
            }
        }
    }
}

/// The one-message answer to request `uuid`.
fn reply(uuid: Uuid, kind: NotificationKind) -> Vec<Message> {
    vec![Message::notification(Some(uuid), kind)]
}

/// `NOTIFY_ERROR` for request `uuid`.
fn refuse(uuid: Uuid, error_msg: String) -> Vec<Message> {
    reply(uuid, NotificationKind::Error { error_msg })
}

impl Nexus {
    async fn answer(&self, uuid: Uuid, kind: RequestKind) -> Vec<Message> {
        match kind {
            RequestKind::Ping => reply(uuid, NotificationKind::Pong),
            RequestKind::Provider => match self.account.info().await {
                Ok(info) => reply(uuid, NotificationKind::Provider(info)),
                Err(_) => reply(uuid, NotificationKind::ProviderNotReady),
            },
            RequestKind::Invoice { msats } => {
                match self.account.backend.invoice(msats.get()).await {
                    Ok((bolt11, hash)) => match bolt11.parse() {
                        Ok(bolt11) => {
                            lock(&self.invoices).insert(hash, uuid);
                            reply(uuid, NotificationKind::Invoice { bolt11 })
                        }
                        Err(_) => refuse(
                            uuid,
                            "the wallet made an invoice the protocol cannot carry".into(),
                        ),
                    },
                    Err(e) => refuse(uuid, format!("cannot make an invoice: {e}")),
                }
            }
            RequestKind::Pay { bolt11 } => self.pay(uuid, bolt11.as_str()).await,
            RequestKind::Rendezvous { .. } => refuse(uuid, "already rendezvoused".into()),
        }
    }

    async fn pay(&self, uuid: Uuid, bolt11: &str) -> Vec<Message> {
        // The limit is checked before paying, with the amount from the invoice's
        // human-readable part, and the amount stays counted unless the payment fails.
        let mut counted = 0;
        if let Some(max) = self.limit.max_msat {
            let Some(amount) = bolt11_amount_msat(bolt11) else {
                return refuse(
                    uuid,
                    "amountless invoices cannot be paid on a limited beacon".into(),
                );
            };
            let mut spent = lock(&self.spent_msat);
            if spent.saturating_add(amount) > max {
                return refuse(
                    uuid,
                    format!(
                        "over this beacon's spending limit: {} msat left",
                        max.saturating_sub(*spent)
                    ),
                );
            }
            *spent += amount;
            counted = amount;
        }
        match self.account.backend.pay(bolt11).await {
            Ok((preimage, _fee)) => {
                let _ = self.account.updates.send(());
                let preimage = Preimage::from_bytes(preimage);
                reply(
                    uuid,
                    NotificationKind::Preimage {
                        preimage,
                        ext: None,
                    },
                )
            }
            Err(e) => {
                let mut spent = lock(&self.spent_msat);
                *spent = spent.saturating_sub(counted);
                refuse(uuid, format!("payment failed: {e}"))
            }
        }
    }
}

/// The amount of a BOLT11 invoice from its human-readable part (`lnbcrt25u1…` → 2 500 000
/// msat); `None` for an amountless or unreadable one.
pub fn bolt11_amount_msat(bolt11: &str) -> Option<u64> {
    let lower = bolt11.to_ascii_lowercase();
    let hrp = &lower[..lower.rfind('1')?];
    let rest = hrp.strip_prefix("ln")?;
    // The network prefix is letters; the amount starts at the first digit.
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let amount = &rest[start..];
    let (digits, multiplier) = match amount.chars().last()? {
        c @ ('m' | 'u' | 'n' | 'p') => (&amount[..amount.len() - 1], Some(c)),
        _ => (amount, None),
    };
    let value: u64 = digits.parse().ok()?;
    // msat per unit of the multiplier: 1 BTC = 10^11 msat.
    match multiplier {
        None => value.checked_mul(100_000_000_000),
        Some('m') => value.checked_mul(100_000_000),
        Some('u') => value.checked_mul(100_000),
        Some('n') => value.checked_mul(100),
        Some('p') => (value % 10 == 0).then_some(value / 10),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bolt11_amounts_from_the_human_readable_part() {
        assert_eq!(bolt11_amount_msat("lnbcrt25u1pabc"), Some(2_500_000));
        assert_eq!(bolt11_amount_msat("lnbc1m1pxyz"), Some(100_000_000));
        assert_eq!(bolt11_amount_msat("lnbc2500n1p"), Some(250_000));
        assert_eq!(bolt11_amount_msat("lnbc10p1p"), Some(1));
        assert_eq!(bolt11_amount_msat("lnbc15p1p"), None);
        assert_eq!(bolt11_amount_msat("lnbcrt1pamountless"), None);
        assert_eq!(bolt11_amount_msat("garbage"), None);
        assert_eq!(bolt11_amount_msat("lnbc99999999999999999999m1p"), None);
    }

    #[test]
    fn fiat_wads_carry_both_amounts() {
        let usd = Denomination::Fiat {
            code: "USD".into(),
            iso_num: 840,
            units_per_btc: 60_000.0,
            decimals: 2,
            symbol: "$".into(),
        };
        let wad = usd.wad(100_000_000); // 1 mBTC = 100 000 000 msat = $60
        assert_eq!(wad.msats(), 100_000_000);
        assert_eq!(wad.code(), "USD");
        assert!(wad.asset_stable());
        assert_eq!(wad.asset_units().as_f64(), Some(60.0));
        assert_eq!(Denomination::Bitcoin.wad(5).code(), "BTC");
    }
}
