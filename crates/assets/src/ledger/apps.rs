//! Apps' payments from their sub-accounts: how one is charged before it leaves and how its
//! outcome comes back. One copy, used by `moip up` (its `LedgerApps`) and by the randomized
//! books test, so the test checks the logic that runs.
//!
//! A payment is charged its amount plus its fee cap (`Op::AppSpent`) before it is sent, so
//! whatever happens next the app never spends what it does not have. It is concluded once, by
//! an `Op::AppRefunded` of what it did not cost — the unused fee cap when it succeeded, all of
//! it when it failed, 0 when it used the whole charge — and only from an outcome the node
//! knows for sure: a payment whose wait timed out stays charged until the node's own payment
//! record says how it ended ([`Ledger::open_app_charges`] lists those, also after a restart).

use moip_lightning::{PaymentRecord, PaymentState};

use super::{AppCharge, JournalStore, Ledger, LedgerError, Op};

/// How an app's payment ended, as the node knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppPaymentOutcome {
    /// It succeeded, costing `spent_msat`: the amount delivered and the routing fee.
    Paid {
        /// Amount and fee, msat.
        spent_msat: u64,
    },
    /// It failed for good: nothing left.
    Failed,
    /// Still in flight, or not known: it stays charged.
    Pending,
}

impl AppPaymentOutcome {
    /// The outcome the node's record of an outgoing payment says.
    pub fn from_record(record: &PaymentRecord) -> AppPaymentOutcome {
        match record.state {
            PaymentState::Succeeded => AppPaymentOutcome::Paid {
                spent_msat: record
                    .amount_msat
                    .unwrap_or(0)
                    .saturating_add(record.fee_paid_msat.unwrap_or(0)),
            },
            PaymentState::Failed => AppPaymentOutcome::Failed,
            PaymentState::Pending => AppPaymentOutcome::Pending,
        }
    }
}

/// Why an app's payment is not charged: nothing is sent.
#[derive(Debug, thiserror::Error)]
pub enum AppChargeError {
    /// Its balance cannot cover the amount and fee cap.
    #[error("the app's balance is {available_msat} msat, {wanted_msat} msat needed with fees")]
    Insufficient {
        /// What it may spend now.
        available_msat: u64,
        /// The amount plus the most the routing may cost.
        wanted_msat: u64,
    },
    /// The ledger refused or could not write the charge.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What comes back of `charge` for `outcome`: `None` while the outcome is unknown. A payment
/// that cost more than its charge (the fee cap prevents it) gets nothing back and is charged no
/// more: the ledger counts what the app was charged.
pub fn app_refund_msat(charge: &AppCharge, outcome: AppPaymentOutcome) -> Option<u64> {
    let left = charge.charged_msat - charge.refunded_msat;
    match outcome {
        AppPaymentOutcome::Paid { spent_msat } => Some(left.saturating_sub(spent_msat)),
        AppPaymentOutcome::Failed => Some(left),
        AppPaymentOutcome::Pending => None,
    }
}

impl<S: JournalStore> Ledger<S> {
    /// Charges `app` `msat` (the amount and the fee cap) for the payment with `hash` (hex),
    /// about to be sent.
    ///
    /// # Errors
    /// [`AppChargeError::Insufficient`] when its balance is short, [`AppChargeError::Ledger`]
    /// when the ledger refuses (the payment is already charged and open) or cannot write it;
    /// nothing changes either way.
    pub fn charge_app(&mut self, app: &str, msat: u64, hash: &str) -> Result<(), AppChargeError> {
        let available_msat = self.state().app_balance_msat(app);
        if msat > available_msat {
            return Err(AppChargeError::Insufficient {
                available_msat,
                wanted_msat: msat,
            });
        }
        self.commit(Op::AppSpent {
            app: app.to_owned(),
            msat,
            hash: hash.to_owned(),
        })?;
        Ok(())
    }

    /// Concludes the app payment with `hash` by `outcome`: refunds what it did not cost and
    /// returns that, msat. `None` (nothing written) when the outcome is still pending, the hash
    /// was never charged, or the payment was concluded already — so learning an outcome twice
    /// (from the wait and from the node's record) refunds once.
    ///
    /// # Errors
    /// A store error writing the refund.
    pub fn conclude_app_payment(
        &mut self,
        hash: &str,
        outcome: AppPaymentOutcome,
    ) -> Result<Option<u64>, LedgerError> {
        let Some(charge) = self.state().app_charge(hash).filter(|c| !c.concluded) else {
            return Ok(None);
        };
        let Some(msat) = app_refund_msat(charge, outcome) else {
            return Ok(None);
        };
        let app = charge.app.clone();
        self.commit(Op::AppRefunded {
            app,
            msat,
            hash: hash.to_owned(),
        })?;
        Ok(Some(msat))
    }

    /// Apps' payments charged and not concluded, by hash (hex): each waits for the node's
    /// record of it.
    pub fn open_app_charges(&self) -> Vec<(String, AppCharge)> {
        self.state()
            .open_app_charges()
            .map(|(hash, charge)| (hash.clone(), charge.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CollateralSource, MemoryJournal, TokenInfo};

    fn hash(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    /// An app with 10,000 msat received.
    fn ledger() -> Ledger<MemoryJournal> {
        let token = TokenInfo {
            id: "t".into(),
            name: "t".into(),
            symbol: "t".into(),
        };
        let mut ledger = Ledger::create(MemoryJournal::default(), token).expect("ledger");
        ledger
            .commit(Op::Deposit {
                sats: 1,
                source: CollateralSource::Lightning {
                    payment_hash: hash(9),
                },
            })
            .expect("deposit");
        ledger
            .commit(Op::AppReceived {
                app: "app".into(),
                msat: 10_000,
                hash: hash(1),
            })
            .expect("received");
        ledger
    }

    #[test]
    fn an_outcome_is_counted_once_and_an_unknown_one_keeps_the_charge() {
        let mut ledger = ledger();
        assert!(matches!(
            ledger.charge_app("app", 10_001, &hash(2)),
            Err(AppChargeError::Insufficient {
                available_msat: 10_000,
                ..
            })
        ));
        ledger.charge_app("app", 6_000, &hash(2)).expect("charged");
        // Timed out: still charged, and listed for the node's record to conclude.
        assert_eq!(
            ledger
                .conclude_app_payment(&hash(2), AppPaymentOutcome::Pending)
                .expect("store"),
            None
        );
        let open: Vec<String> = ledger
            .open_app_charges()
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        assert_eq!(open, vec![hash(2)]);
        assert_eq!(ledger.state().app_balance_msat("app"), 4_000);
        // Failed later: all of it back, once.
        assert_eq!(
            ledger
                .conclude_app_payment(&hash(2), AppPaymentOutcome::Failed)
                .expect("store"),
            Some(6_000)
        );
        assert_eq!(
            ledger
                .conclude_app_payment(&hash(2), AppPaymentOutcome::Failed)
                .expect("store"),
            None
        );
        assert!(ledger.open_app_charges().is_empty());
        assert_eq!(ledger.state().app_balance_msat("app"), 10_000);
        // Paid: the unused fee cap back; a payment using its whole charge concludes with 0.
        ledger.charge_app("app", 6_000, &hash(3)).expect("charged");
        let paid = AppPaymentOutcome::Paid { spent_msat: 5_100 };
        assert_eq!(
            ledger.conclude_app_payment(&hash(3), paid).expect("store"),
            Some(900)
        );
        ledger.charge_app("app", 4_000, &hash(4)).expect("charged");
        let all = AppPaymentOutcome::Paid { spent_msat: 4_000 };
        assert_eq!(
            ledger.conclude_app_payment(&hash(4), all).expect("store"),
            Some(0)
        );
        assert!(ledger.open_app_charges().is_empty());
        assert_eq!(ledger.state().app_balance_msat("app"), 900);
        // A paid hash is not charged again.
        assert!(ledger.charge_app("app", 100, &hash(3)).is_err());
    }
}
