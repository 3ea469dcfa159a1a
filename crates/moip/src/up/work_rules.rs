//! The Work rules and the Nostr relay's and Work service's limits, as `moip.toml` may set them
//! (`[rules]`, `[nostr_relay]`, `[ingest]`): each key optional, the library's default where
//! absent, and every value checked before the node starts, since a zero window or a zero quota
//! would not fail loudly later — it would lapse every claim at once or refuse every event.

use anyhow::bail;
use moip_work::relay::{RelayLimits, MAX_MESSAGE};
use moip_work::service::IngestLimits;
use moip_work::task::Rules;
use serde::Deserialize;

/// `[rules]`: the Work protocol's rules ([`Rules`]; times in seconds).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RulesSettings {
    quorum: Option<usize>,
    physical_verifiers: Option<usize>,
    min_trust: Option<f64>,
    attestation_window_secs: Option<u64>,
    challenge_window_secs: Option<u64>,
    claim_min_trust: Option<f64>,
    claim_window_secs: Option<u64>,
    dispute_min_trust: Option<f64>,
    panel_window_secs: Option<u64>,
    vouch_cap: Option<usize>,
    vouch_period_secs: Option<u64>,
}

/// `[nostr_relay]`: the in-process relay's limits ([`RelayLimits`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RelaySettings {
    max_event_bytes: Option<usize>,
    max_follow_list_bytes: Option<usize>,
    events_per_minute: Option<u32>,
    max_stored_events: Option<usize>,
    max_future_secs: Option<u64>,
    author_events_per_minute: Option<u32>,
    author_stored_events: Option<usize>,
    member_events_per_minute: Option<u32>,
    member_stored_events: Option<usize>,
}

/// `[ingest]`: what the Work service keeps of each author ([`IngestLimits`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct IngestSettings {
    decisions_per_author: Option<u32>,
    bytes_per_author: Option<usize>,
    stranger_refusals: Option<u32>,
    window_secs: Option<u64>,
}

/// A count or length that must be above zero.
fn positive<T: Copy + Default + PartialOrd>(key: &str, value: T) -> anyhow::Result<T> {
    if value <= T::default() {
        bail!("{key} must be above 0");
    }
    Ok(value)
}

/// A trust floor: a GrapeRank score, from 0 to 1.
fn trust(key: &str, value: f64) -> anyhow::Result<f64> {
    if !(0.0..=1.0).contains(&value) {
        bail!("{key} is a trust score from 0 to 1, not {value}");
    }
    Ok(value)
}

/// The rules `[rules]` gives; `[community] challenge_window_secs`, the older key, is taken
/// when `[rules]` does not set it (both set: refused, as one would silently lose).
pub(crate) fn rules(file: &RulesSettings, older_challenge: Option<u64>) -> anyhow::Result<Rules> {
    let d = Rules::default();
    let challenge = match (file.challenge_window_secs, older_challenge) {
        (Some(_), Some(_)) => bail!(
            "rules.challenge_window_secs and community.challenge_window_secs are both set: keep one"
        ),
        (Some(secs), None) | (None, Some(secs)) => secs,
        (None, None) => d.challenge_window,
    };
    let rules = Rules {
        quorum: positive("rules.quorum", file.quorum.unwrap_or(d.quorum))?,
        physical_verifiers: file.physical_verifiers.unwrap_or(d.physical_verifiers),
        min_trust: trust("rules.min_trust", file.min_trust.unwrap_or(d.min_trust))?,
        attestation_window: positive(
            "rules.attestation_window_secs",
            file.attestation_window_secs.unwrap_or(d.attestation_window),
        )?,
        challenge_window: positive("rules.challenge_window_secs", challenge)?,
        claim_min_trust: trust(
            "rules.claim_min_trust",
            file.claim_min_trust.unwrap_or(d.claim_min_trust),
        )?,
        claim_window: positive(
            "rules.claim_window_secs",
            file.claim_window_secs.unwrap_or(d.claim_window),
        )?,
        dispute_min_trust: trust(
            "rules.dispute_min_trust",
            file.dispute_min_trust.unwrap_or(d.dispute_min_trust),
        )?,
        panel_window: positive(
            "rules.panel_window_secs",
            file.panel_window_secs.unwrap_or(d.panel_window),
        )?,
        // 0 is a choice: no vouches, trust from certifications only.
        vouch_cap: file.vouch_cap.unwrap_or(d.vouch_cap),
        vouch_period: positive(
            "rules.vouch_period_secs",
            file.vouch_period_secs.unwrap_or(d.vouch_period),
        )?,
        version: d.version,
    };
    if rules.physical_verifiers > rules.quorum {
        bail!(
            "rules.physical_verifiers ({}) is more than rules.quorum ({}): no quorum could form",
            rules.physical_verifiers,
            rules.quorum
        );
    }
    Ok(rules)
}

/// The relay limits `[nostr_relay]` gives.
pub(crate) fn relay_limits(file: &RelaySettings) -> anyhow::Result<RelayLimits> {
    let d = RelayLimits::default();
    // A smaller store lowers the default shares with it; shares given are checked below.
    let max_stored = file.max_stored_events.unwrap_or(d.max_stored_events);
    let size = |key: &str, value: Option<usize>, default: usize| -> anyhow::Result<usize> {
        let value = positive(key, value.unwrap_or(default))?;
        if value > MAX_MESSAGE {
            bail!("{key} is at most {MAX_MESSAGE} (the largest message read), not {value}");
        }
        Ok(value)
    };
    let limits = RelayLimits {
        max_event_bytes: size(
            "nostr_relay.max_event_bytes",
            file.max_event_bytes,
            d.max_event_bytes,
        )?,
        max_follow_list_bytes: size(
            "nostr_relay.max_follow_list_bytes",
            file.max_follow_list_bytes,
            d.max_follow_list_bytes,
        )?,
        events_per_minute: positive(
            "nostr_relay.events_per_minute",
            file.events_per_minute.unwrap_or(d.events_per_minute),
        )?,
        max_stored_events: positive(
            "nostr_relay.max_stored_events",
            file.max_stored_events.unwrap_or(d.max_stored_events),
        )?,
        // 0 is a choice: nothing dated ahead of the relay's clock.
        max_future_secs: file.max_future_secs.unwrap_or(d.max_future_secs),
        author_events_per_minute: positive(
            "nostr_relay.author_events_per_minute",
            file.author_events_per_minute
                .unwrap_or(d.author_events_per_minute),
        )?,
        author_stored_events: positive(
            "nostr_relay.author_stored_events",
            file.author_stored_events
                .unwrap_or(d.author_stored_events.min(max_stored)),
        )?,
        member_events_per_minute: positive(
            "nostr_relay.member_events_per_minute",
            file.member_events_per_minute
                .unwrap_or(d.member_events_per_minute),
        )?,
        member_stored_events: positive(
            "nostr_relay.member_stored_events",
            file.member_stored_events
                .unwrap_or(d.member_stored_events.min(max_stored)),
        )?,
    };
    for (key, value) in [
        ("author_stored_events", limits.author_stored_events),
        ("member_stored_events", limits.member_stored_events),
    ] {
        if value > limits.max_stored_events {
            bail!(
                "nostr_relay.{key} ({value}) is more than nostr_relay.max_stored_events ({})",
                limits.max_stored_events
            );
        }
    }
    Ok(limits)
}

/// The ingest limits `[ingest]` gives.
pub(crate) fn ingest_limits(file: &IngestSettings) -> anyhow::Result<IngestLimits> {
    let d = IngestLimits::default();
    Ok(IngestLimits {
        decisions_per_author: positive(
            "ingest.decisions_per_author",
            file.decisions_per_author.unwrap_or(d.decisions_per_author),
        )?,
        bytes_per_author: positive(
            "ingest.bytes_per_author",
            file.bytes_per_author.unwrap_or(d.bytes_per_author),
        )?,
        // 0 is a choice: strangers' refused events are never recorded.
        stranger_refusals: file.stranger_refusals.unwrap_or(d.stranger_refusals),
        window: std::time::Duration::from_secs(positive(
            "ingest.window_secs",
            file.window_secs.unwrap_or(d.window.as_secs()),
        )?),
        ..d
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct File {
        rules: RulesSettings,
        nostr_relay: RelaySettings,
        ingest: IngestSettings,
    }

    fn parse(text: &str) -> anyhow::Result<(Rules, RelayLimits, IngestLimits)> {
        let file: File = toml::from_str(text)?;
        Ok((
            rules(&file.rules, None)?,
            relay_limits(&file.nostr_relay)?,
            ingest_limits(&file.ingest)?,
        ))
    }

    fn refusal(text: &str) -> String {
        format!("{:#}", parse(text).expect_err("refused"))
    }

    #[test]
    fn absent_keys_keep_the_defaults_and_given_ones_are_taken() {
        let (r, l, i) = parse("").expect("settings");
        assert_eq!(r, Rules::default());
        assert_eq!(l, RelayLimits::default());
        assert_eq!(i.window, IngestLimits::default().window);

        let (r, l, i) = parse(
            "[rules]\nclaim_min_trust = 0.2\nclaim_window_secs = 3600\npanel_window_secs = 60\n\
             dispute_min_trust = 0.3\nvouch_cap = 2\nvouch_period_secs = 86400\n\
             [nostr_relay]\nauthor_stored_events = 10\nmax_stored_events = 100\n\
             [ingest]\ndecisions_per_author = 7\nwindow_secs = 60\n",
        )
        .expect("settings");
        assert_eq!(
            (r.claim_min_trust, r.claim_window, r.panel_window),
            (0.2, 3600, 60)
        );
        assert_eq!(
            (r.dispute_min_trust, r.vouch_cap, r.vouch_period),
            (0.3, 2, 86400)
        );
        assert_eq!(r.quorum, Rules::default().quorum, "unset: the default");
        assert_eq!((l.author_stored_events, l.max_stored_events), (10, 100));
        assert_eq!(
            l.member_stored_events, 100,
            "the default share follows a smaller store"
        );
        assert_eq!(i.decisions_per_author, 7);
        assert_eq!(i.window, std::time::Duration::from_secs(60));
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        for (text, says) in [
            (
                "[rules]\nclaim_window_secs = 0\n",
                "rules.claim_window_secs must be above 0",
            ),
            (
                "[rules]\npanel_window_secs = 0\n",
                "rules.panel_window_secs must be above 0",
            ),
            ("[rules]\nquorum = 0\n", "rules.quorum must be above 0"),
            (
                "[rules]\nclaim_min_trust = 1.5\n",
                "rules.claim_min_trust is a trust score",
            ),
            (
                "[rules]\ndispute_min_trust = -0.1\n",
                "rules.dispute_min_trust is a trust",
            ),
            (
                "[rules]\nmin_trust = nan\n",
                "rules.min_trust is a trust score",
            ),
            (
                "[rules]\nquorum = 2\nphysical_verifiers = 3\n",
                "no quorum could form",
            ),
            ("[rules]\nclaim_windw_secs = 5\n", "claim_windw_secs"),
            (
                "[nostr_relay]\nauthor_events_per_minute = 0\n",
                "author_events_per_minute",
            ),
            (
                "[nostr_relay]\nmax_stored_events = 100\nauthor_stored_events = 250\n",
                "author_stored_events (250) is more than nostr_relay.max_stored_events (100)",
            ),
            (
                "[nostr_relay]\nmax_event_bytes = 2000000\n",
                "at most 1048576",
            ),
            (
                "[ingest]\nwindow_secs = 0\n",
                "ingest.window_secs must be above 0",
            ),
            ("[rules]\nclaim_window_secs = -5\n", "claim_window_secs"),
        ] {
            let text_refused = refusal(text);
            assert!(text_refused.contains(says), "{text:?}: {text_refused}");
        }
    }

    #[test]
    fn the_older_challenge_key_still_counts_but_not_beside_the_new_one() {
        let rules_only = RulesSettings::default();
        assert_eq!(
            rules(&rules_only, Some(60))
                .expect("rules")
                .challenge_window,
            60
        );
        let both: File = toml::from_str("[rules]\nchallenge_window_secs = 5\n").expect("toml");
        let refused = rules(&both.rules, Some(60)).expect_err("refused");
        assert!(format!("{refused}").contains("keep one"), "{refused}");
        assert!(
            rules(&rules_only, Some(0)).is_err(),
            "a zero window refused"
        );
    }
}
