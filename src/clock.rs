//! Time as the audit log, the state file and Key Vault tags write it: Unix seconds and
//! RFC 3339 UTC.

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Now, as RFC 3339 UTC with second precision (`2025-10-25T14:30:00Z`).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Unix seconds as RFC 3339 UTC (`2025-10-25T14:30:00Z`).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Unix seconds of an RFC 3339 timestamp.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// RFC 3339 (Docker's `State.StartedAt`, nanoseconds included) as Unix nanoseconds.
pub fn parse_rfc3339_ns(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

/// A period such as `90d`, `12h`, `30m`, `45s` or `2w`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit_secs).map(std::time::Duration::from_secs)
}

/// A period to wait or poll (`sync --watch --interval`): as [`parse_duration`], and a bare
/// number is seconds, as `sleep(1)`, `watch(1)` and `--health-timeout` read it. Ages and
/// policies (`--older-than`, `rotate-every`) keep asking for a unit: there a bare `90` means
/// days to a reader, and taking it as seconds would rotate everything.
pub fn parse_period(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(std::time::Duration::from_secs);
    }
    parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bare_number_is_seconds_for_a_period_but_not_for_an_age() {
        assert_eq!(parse_period("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_period(" 60 "), Some(Duration::from_secs(60)));
        assert_eq!(parse_period("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_period("0"), Some(Duration::ZERO));
        for bad in ["", "s", "-2", "1.5", "2 s", "99999999999999999999", "2y"] {
            assert_eq!(parse_period(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("90"), None, "an age still needs its unit");
    }
}
