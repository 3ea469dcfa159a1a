//! Identities and roles in a community, and the physical verifiers' certification rules.
//!
//! Every participant is a Nostr key. Roles — member, employer, worker, attester, physical
//! verifier — are per community. Physical verifiers anchor the trust graph (they are GrapeRank's
//! observers), so becoming one is guarded by the controls the reference names:
//!
//! - **never certify alone**: a key is a verifier only while at least two distinct verifiers
//!   hold valid certifications of it (the community's founding verifiers excepted);
//! - **a cap per verifier and period**: a verifier certifies at most so many keys per period;
//! - **expiry and renewal**: a certification is valid for a while; certifying again renews it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::AccountId;

/// What someone may do in a community.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Belongs to the community.
    Member,
    /// Posts tasks and pays for them.
    Employer,
    /// Takes tasks.
    Worker,
    /// Attests work (subject to the trust threshold).
    Attester,
    /// Verifies work and people in person; certified by two others.
    PhysicalVerifier,
}

/// How verifiers are certified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierRules {
    /// Distinct certifying verifiers needed.
    pub certifiers_needed: usize,
    /// Most certifications one verifier gives per period.
    pub cap_per_period: usize,
    /// The period, in seconds.
    pub period_secs: u64,
    /// How long a certification is valid, in seconds.
    pub validity_secs: u64,
}

impl Default for VerifierRules {
    fn default() -> Self {
        VerifierRules {
            certifiers_needed: 2,
            cap_per_period: 5,
            period_secs: 30 * 86_400,
            validity_secs: 365 * 86_400,
        }
    }
}

/// Why a certification was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The certifier is not a verifier now.
    #[error("{0} is not a physical verifier")]
    NotVerifier(AccountId),
    /// Certifying oneself.
    #[error("a verifier cannot certify itself")]
    SelfCertification,
    /// The certifier used up this period's certifications.
    #[error("{verifier} has certified {cap} keys this period already")]
    OverCap {
        /// The verifier.
        verifier: AccountId,
        /// The cap.
        cap: usize,
    },
}

/// The community's roles and certifications.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    rules: VerifierRules,
    founders: BTreeSet<AccountId>,
    /// (certifier, subject) → when certified.
    certifications: BTreeMap<(AccountId, AccountId), u64>,
    /// Every certification time per certifier, for the cap.
    given: HashMap<AccountId, Vec<u64>>,
    roles: HashMap<AccountId, BTreeSet<Role>>,
}

impl Registry {
    /// A community founded by `founders`, its first physical verifiers.
    pub fn new(founders: impl IntoIterator<Item = AccountId>, rules: VerifierRules) -> Registry {
        let founders: BTreeSet<AccountId> = founders.into_iter().collect();
        let mut registry = Registry {
            rules,
            founders: founders.clone(),
            ..Registry::default()
        };
        for f in founders {
            registry.grant(f, Role::Member);
            registry.grant(f, Role::PhysicalVerifier);
        }
        registry
    }

    /// Gives `who` a role (physical verifier status comes from certifications, not from here).
    pub fn grant(&mut self, who: AccountId, role: Role) {
        self.roles.entry(who).or_default().insert(role);
    }

    /// Whether `who` holds `role` at `now`.
    pub fn has_role(&self, who: &AccountId, role: Role, now: u64) -> bool {
        if role == Role::PhysicalVerifier {
            return self.verifiers(now).contains(who);
        }
        self.roles.get(who).is_some_and(|r| r.contains(&role))
    }

    /// The physical verifiers at `now`: the founders, then — until nothing changes — everyone
    /// with enough valid certifications from verifiers.
    pub fn verifiers(&self, now: u64) -> BTreeSet<AccountId> {
        let mut verifiers = self.founders.clone();
        loop {
            let mut counts: HashMap<AccountId, usize> = HashMap::new();
            for ((certifier, subject), at) in &self.certifications {
                let valid = now >= *at && now - at < self.rules.validity_secs;
                if valid && verifiers.contains(certifier) && !verifiers.contains(subject) {
                    *counts.entry(*subject).or_insert(0) += 1;
                }
            }
            let new: Vec<AccountId> = counts
                .into_iter()
                .filter(|(_, n)| *n >= self.rules.certifiers_needed)
                .map(|(who, _)| who)
                .collect();
            if new.is_empty() {
                return verifiers;
            }
            verifiers.extend(new);
        }
    }

    /// `verifier` certifies `subject` at `now` (or renews its certification).
    ///
    /// # Errors
    /// [`IdentityError`] when the certifier is no verifier, certifies itself, or is over its cap.
    pub fn certify(
        &mut self,
        verifier: AccountId,
        subject: AccountId,
        now: u64,
    ) -> Result<(), IdentityError> {
        if verifier == subject {
            return Err(IdentityError::SelfCertification);
        }
        if !self.verifiers(now).contains(&verifier) {
            return Err(IdentityError::NotVerifier(verifier));
        }
        let period = self.rules.period_secs;
        let given = self.given.entry(verifier).or_default();
        given.retain(|t| t.saturating_add(period) > now);
        if given.len() >= self.rules.cap_per_period {
            return Err(IdentityError::OverCap {
                verifier,
                cap: self.rules.cap_per_period,
            });
        }
        given.push(now);
        self.certifications.insert((verifier, subject), now);
        self.grant(subject, Role::Member);
        Ok(())
    }

    /// Valid certifications at `now`, as (certifier, subject).
    pub fn certifications(&self, now: u64) -> Vec<(AccountId, AccountId)> {
        self.certifications
            .iter()
            .filter(|(_, at)| now >= **at && now - **at < self.rules.validity_secs)
            .map(|(pair, _)| *pair)
            .collect()
    }
}
