//! Apps' own money: where an application keeps each app's balance, so an app spends what it
//! was given and never the node's whole balance (which, in a community node, is the collateral
//! behind its members' tokens).
//!
//! The wallet service knows nothing of the application's books: it asks this trait before a
//! payment and reports what each payment cost and what each app received. Without one
//! ([`crate::NwcConfig::accounts`] `None`), apps spend from the node within their budgets.

use std::fmt;

use nostr_sdk::PublicKey;

/// Why an app's account cannot cover a payment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountRefusal {
    /// Its balance, less what its payments in flight hold, is short.
    #[error("the app's balance is {available_msat} msat, {wanted_msat} msat needed with fees")]
    Insufficient {
        /// What it may spend now.
        available_msat: u64,
        /// The amount plus the most the routing may cost.
        wanted_msat: u64,
    },
    /// The books could not be read.
    #[error("the app's account cannot be read: {0}")]
    Unavailable(String),
}

/// An application's books of its apps' money, one account per connection's client key.
pub trait AppAccounts: Send + Sync {
    /// What `app` may spend now, msat.
    ///
    /// # Errors
    /// [`AccountRefusal::Unavailable`] when the books cannot be read.
    fn available_msat(&self, app: &PublicKey) -> Result<u64, AccountRefusal>;

    /// Sets `msat` of `app`'s balance aside for the payment with `payment_hash` (hex), about
    /// to be made. Kept durably, it stays charged if the application stops mid-payment.
    ///
    /// # Errors
    /// [`AccountRefusal::Insufficient`] when its balance cannot cover it: nothing is paid.
    fn reserve(&self, app: &PublicKey, msat: u64, payment_hash: &str)
        -> Result<(), AccountRefusal>;

    /// Ends a reservation: the payment with `payment_hash` (hex) cost `spent_msat` (amount and
    /// routing fee; `Some(0)` when it failed), which stays charged; the rest comes back.
    /// `None` when its outcome is unknown (the wait timed out): it stays charged in full until
    /// the application learns the outcome from the node's own payment record.
    fn settle(
        &self,
        app: &PublicKey,
        reserved_msat: u64,
        spent_msat: Option<u64>,
        payment_hash: &str,
    );

    /// An invoice `app` made was paid `msat`; each payment hash counts once.
    fn received(&self, app: &PublicKey, msat: u64, payment_hash: &str);
}

impl fmt::Debug for dyn AppAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppAccounts")
    }
}
