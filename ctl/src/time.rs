//! Times for people: spans ("3h 12m"), countdowns ("9m 41s"), relative times ("in 2h 13m",
//! "5m ago"), UTC dates.

use std::time::{SystemTime, UNIX_EPOCH};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A span in its two largest units, seconds only under a minute: "45s", "5m", "3h 12m", "2d 4h".
pub fn span(secs: u64) -> String {
    let two = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit} {small}{small_unit}")
        }
    };
    match secs {
        s if s < MINUTE => format!("{s}s"),
        s if s < HOUR => format!("{}m", s / MINUTE),
        s if s < DAY => two(s / HOUR, "h", s % HOUR / MINUTE, "m"),
        s => two(s / DAY, "d", s % DAY / HOUR, "h"),
    }
}

/// A countdown to the second, stable in width as it runs down: "45s", "9m 05s", "1h 02m 03s".
pub fn countdown(secs: u64) -> String {
    match secs {
        s if s < MINUTE => format!("{s}s"),
        s if s < HOUR => format!("{}m {:02}s", s / MINUTE, s % MINUTE),
        s => format!("{}h {:02}m {:02}s", s / HOUR, s % HOUR / MINUTE, s % MINUTE),
    }
}

/// `at` seen from `now`: "in 2h 13m", "5m ago", or "just now".
pub fn relative(at: u64, now: u64) -> String {
    if at > now {
        format!("in {}", span(at - now))
    } else if at < now {
        format!("{} ago", span(now - at))
    } else {
        "just now".to_string()
    }
}

/// Unix seconds as "2025-06-01 14:03 UTC".
pub fn utc(secs: u64) -> String {
    let (year, month, day) = civil_from_days(secs / DAY);
    let rem = secs % DAY;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / HOUR,
        rem % HOUR / MINUTE
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_use_two_units() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(45), "45s");
        assert_eq!(span(60), "1m");
        assert_eq!(span(5 * 60 + 59), "5m");
        assert_eq!(span(3 * HOUR), "3h");
        assert_eq!(span(3 * HOUR + 12 * MINUTE + 30), "3h 12m");
        assert_eq!(span(DAY), "1d");
        assert_eq!(span(2 * DAY + 4 * HOUR + 59 * MINUTE), "2d 4h");
        assert_eq!(span(400 * DAY), "400d");
    }

    #[test]
    fn countdowns_show_seconds() {
        assert_eq!(countdown(0), "0s");
        assert_eq!(countdown(59), "59s");
        assert_eq!(countdown(60), "1m 00s");
        assert_eq!(countdown(9 * MINUTE + 41), "9m 41s");
        assert_eq!(countdown(10 * MINUTE), "10m 00s");
        assert_eq!(countdown(HOUR + 2 * MINUTE + 3), "1h 02m 03s");
    }

    #[test]
    fn relative_times_read_both_ways() {
        let now = 1_000_000;
        assert_eq!(relative(now + 2 * HOUR + 13 * MINUTE, now), "in 2h 13m");
        assert_eq!(relative(now - 5 * MINUTE - 7, now), "5m ago");
        assert_eq!(relative(now - 45, now), "45s ago");
        assert_eq!(relative(now + 3 * DAY, now), "in 3d");
        assert_eq!(relative(now, now), "just now");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_748_786_587), "2025-06-01 14:03 UTC");
        assert_eq!(utc(4_107_542_399), "2100-02-28 23:59 UTC");
    }
}
