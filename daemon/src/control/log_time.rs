//! The timestamp of a stderr log line, `2026-12-01T13:50:06.120276Z` (RFC 3339, UTC,
//! microseconds), the text tracing-subscriber's `SystemTime` timer writes. The date and time of
//! day change once a second, so each thread keeps that part formatted and only the
//! microseconds are written per line.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS`, the part of the timestamp that is the same for a whole second.
const SECOND_LEN: usize = 19;

/// The second last formatted on this thread and its text.
#[derive(Clone, Copy)]
struct Cached {
    secs: i64,
    text: [u8; SECOND_LEN],
}

thread_local! {
    static CACHED: Cell<Option<Cached>> = const { Cell::new(None) };
}

/// Appends the current time.
pub fn now(out: &mut Vec<u8>) {
    let (secs, micros) = split(SystemTime::now());
    write(out, secs, micros);
}

/// Seconds since the epoch (negative before it, with the microseconds counted forward from
/// them, as tracing-subscriber's `DateTime` does) and microseconds.
fn split(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(e) => {
            let d = e.duration();
            let (secs, nanos) = (d.as_secs() as i64, d.subsec_nanos());
            if nanos == 0 {
                (-secs, 0)
            } else {
                (-secs - 1, (1_000_000_000 - nanos) / 1_000)
            }
        }
    }
}

/// Appends the timestamp of `secs` since the epoch and `micros` (below 1,000,000).
pub fn write(out: &mut Vec<u8>, secs: i64, micros: u32) {
    let cached = CACHED
        .try_with(|c| c.get())
        .ok()
        .flatten()
        .filter(|c| c.secs == secs);
    match cached {
        Some(c) => out.extend_from_slice(&c.text),
        None => match second_text(secs) {
            Some(text) => {
                let _ = CACHED.try_with(|c| c.set(Some(Cached { secs, text })));
                out.extend_from_slice(&text);
            }
            // Years outside 0..=9999 do not fit the cache's width; no clock of ours shows them.
            None => write_wide(out, secs),
        },
    }
    out.push(b'.');
    let mut digits = [b'0'; 6];
    let mut rest = micros.min(999_999);
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// The date and time of day of a second whose year has four digits.
fn second_text(secs: i64) -> Option<[u8; SECOND_LEN]> {
    let (year, month, day, hour, minute, second) = civil(secs);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut text = *b"0000-00-00T00:00:00";
    let year = year as u32;
    text[0] = b'0' + (year / 1000) as u8;
    text[1] = b'0' + (year / 100 % 10) as u8;
    text[2] = b'0' + (year / 10 % 10) as u8;
    text[3] = b'0' + (year % 10) as u8;
    for (at, value) in [(5, month), (8, day), (11, hour), (14, minute), (17, second)] {
        text[at] = b'0' + (value / 10) as u8;
        text[at + 1] = b'0' + (value % 10) as u8;
    }
    Some(text)
}

/// Years beyond four digits, written the way tracing-subscriber writes them.
fn write_wide(out: &mut Vec<u8>, secs: i64) {
    use std::io::Write as _;
    let (year, month, day, hour, minute, second) = civil(secs);
    let _ = if year > 9999 {
        write!(out, "+{year}")
    } else {
        write!(out, "{year:05}")
    };
    let _ = write!(
        out,
        "-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
    );
}

/// Year, month, day, hour, minute, second (UTC, proleptic Gregorian) of `secs` since the epoch.
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let in_day = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = crate::clock::civil_from_days(secs.div_euclid(86_400));
    (
        year,
        month,
        day,
        in_day / 3_600,
        in_day / 60 % 60,
        in_day % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(secs: i64, micros: u32) -> String {
        let mut out = Vec::new();
        write(&mut out, secs, micros);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn known_instants_read_as_rfc3339_with_microseconds() {
        // `date -u -d @1796133006` is Tue Dec  1 13:50:06 UTC 2026.
        assert_eq!(text(1_796_133_006, 120_276), "2026-12-01T13:50:06.120276Z");
        assert_eq!(text(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(text(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(text(1_709_251_199, 999_999), "2024-02-29T23:59:59.999999Z");
        assert_eq!(text(253_402_300_799, 1), "9999-12-31T23:59:59.000001Z");
        assert_eq!(text(253_402_300_800, 0), "+10000-01-01T00:00:00.000000Z");
        assert_eq!(text(-1, 500_000), "1969-12-31T23:59:59.500000Z");
    }

    #[test]
    fn the_cached_second_is_replaced_when_the_second_changes() {
        assert_eq!(text(1_796_133_006, 1), "2026-12-01T13:50:06.000001Z");
        assert_eq!(text(1_796_133_006, 2), "2026-12-01T13:50:06.000002Z");
        assert_eq!(text(1_796_133_007, 3), "2026-12-01T13:50:07.000003Z");
        assert_eq!(text(1_796_133_006, 4), "2026-12-01T13:50:06.000004Z");
    }

    #[test]
    fn times_before_the_epoch_count_microseconds_forward() {
        let before = UNIX_EPOCH - Duration::from_micros(1_500_000);
        assert_eq!(split(before), (-2, 500_000));
        assert_eq!(split(UNIX_EPOCH - Duration::from_secs(3)), (-3, 0));
        let after = UNIX_EPOCH + Duration::new(1_796_133_006, 120_276_999);
        assert_eq!(split(after), (1_796_133_006, 120_276));
    }
}
