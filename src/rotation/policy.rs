//! The rotation policy a secret declares (`x-compose-secrets.rotate-every`, `expiry-grace`):
//! when its value is due for rotation, and the expiry (`exp`) a rotation gives the new
//! version in Key Vault, so Azure's own near-expiry events and portal views agree with it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::compose::SecretSpec;
use crate::error::Result;
use crate::files::runtime_dir::RuntimeDir;
use crate::store::{tags, SecretStore};

/// Added to `rotate-every` for the version's expiry when the secret sets no `expiry-grace`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 86_400);

/// `verify` warns once this share of the period (in percent) has passed.
pub const WARN_PERCENT: u64 = 80;

/// The expiry a version rotated at `rotated_at` (Unix seconds) gets: rotated-at +
/// rotate-every + expiry-grace. `None` when the secret has no policy.
pub fn expiry(spec: &SecretSpec, rotated_at: i64) -> Option<i64> {
    let period = spec.rotate_every?;
    let grace = spec.expiry_grace.unwrap_or(DEFAULT_GRACE);
    Some(
        rotated_at
            .saturating_add(secs(period))
            .saturating_add(secs(grace)),
    )
}

/// Where a secret stands against its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No `rotate-every`.
    NoPolicy,
    /// A policy, but no record of when the value was set.
    Unknown { period: i64 },
    /// Within the first 80 % of its period.
    Current { age: i64, period: i64 },
    /// Past 80 % of its period, not yet overdue.
    Soon { age: i64, period: i64 },
    /// The period has passed.
    Overdue { age: i64, period: i64 },
}

impl Standing {
    /// Whether `rotate --due` rotates it: overdue, or never known to have been set.
    pub fn is_due(self) -> bool {
        matches!(self, Standing::Overdue { .. } | Standing::Unknown { .. })
    }
}

/// Where `spec` stands, its value set at `set_at` (Unix seconds), at `now`.
pub fn standing(spec: &SecretSpec, set_at: Option<i64>, now: i64) -> Standing {
    let Some(period) = spec.rotate_every.map(secs) else {
        return Standing::NoPolicy;
    };
    let Some(at) = set_at else {
        return Standing::Unknown { period };
    };
    let age = now.saturating_sub(at).max(0);
    if age >= period {
        Standing::Overdue { age, period }
    } else if i128::from(age) * 100 >= i128::from(period) * i128::from(WARN_PERCENT) {
        Standing::Soon { age, period }
    } else {
        Standing::Current { age, period }
    }
}

/// When a secret's current value was set, and its version's expiry where the store keeps one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastSet {
    pub at: Option<i64>,
    pub expires: Option<i64>,
}

/// For each secret, when its current value was set.
///
/// Key Vault: the latest version's `rotated-at` tag, else the version's own timestamp (a
/// version set in the portal is a rotation too), with its `exp`, from one listing. `.env`
/// keeps no history, so this host's audit log stands in: the last rotation, sync or load that
/// changed the value.
pub async fn last_set(
    store: &dyn SecretStore,
    specs: &[&SecretSpec],
    runtime: Option<&RuntimeDir>,
) -> Result<BTreeMap<String, LastSet>> {
    let mut out = BTreeMap::new();
    if store.keeps_versions() {
        let listing = crate::store::listing_by_name(store).await?;
        for spec in specs {
            let listed = listing.get(&store.key_for(spec).to_ascii_lowercase());
            let at = listed.and_then(|i| {
                i.tags
                    .get(tags::ROTATED_AT)
                    .and_then(|t| crate::clock::parse_rfc3339(t))
                    .or(i.updated)
            });
            out.insert(
                spec.name.clone(),
                LastSet {
                    at,
                    expires: listed.and_then(|i| i.expires),
                },
            );
        }
    } else {
        for spec in specs {
            out.insert(
                spec.name.clone(),
                LastSet {
                    at: crate::audit::last_change(runtime, &spec.name),
                    expires: None,
                },
            );
        }
    }
    Ok(out)
}

/// A period in words: `90d`, `36h`, `15m`, `20s`.
pub fn human(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 2 * 3600 => format!("{}h", s / 3600),
        s if s >= 120 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(every: Option<&str>, grace: Option<&str>) -> SecretSpec {
        SecretSpec {
            rotate_every: every.and_then(crate::clock::parse_duration),
            expiry_grace: grace.and_then(crate::clock::parse_duration),
            ..super::super::tests::spec("s")
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn expiry_is_rotated_at_plus_the_period_plus_the_grace() {
        assert_eq!(expiry(&spec(None, None), 1000), None);
        assert_eq!(
            expiry(&spec(Some("90d"), None), 1000),
            Some(1000 + 97 * DAY)
        );
        assert_eq!(
            expiry(&spec(Some("30d"), Some("1d")), 1000),
            Some(1000 + 31 * DAY)
        );
    }

    #[test]
    fn standing_follows_the_share_of_the_period_that_passed() {
        let s = spec(Some("10d"), None);
        let now = 100 * DAY;
        assert_eq!(
            standing(&spec(None, None), Some(0), now),
            Standing::NoPolicy
        );
        assert!(matches!(standing(&s, None, now), Standing::Unknown { .. }));
        assert!(standing(&s, None, now).is_due());
        assert!(matches!(
            standing(&s, Some(now - 7 * DAY), now),
            Standing::Current { .. }
        ));
        assert!(matches!(
            standing(&s, Some(now - 8 * DAY), now),
            Standing::Soon { .. }
        ));
        assert!(!standing(&s, Some(now - 9 * DAY), now).is_due());
        assert!(matches!(
            standing(&s, Some(now - 10 * DAY), now),
            Standing::Overdue { .. }
        ));
        assert!(standing(&s, Some(now - 11 * DAY), now).is_due());
        // A clock behind the store's is not "negative age".
        assert!(matches!(
            standing(&s, Some(now + DAY), now),
            Standing::Current { age: 0, .. }
        ));
    }

    #[test]
    fn periods_read_as_people_write_them() {
        assert_eq!(human(90 * DAY), "90d");
        assert_eq!(human(36 * 3600), "36h");
        assert_eq!(human(900), "15m");
        assert_eq!(human(20), "20s");
    }
}
