//! The config's duration and size units: never panic, and what they parse formats back to the
//! same value (durations below a thousand years: past 2^64 ms a fractional-second duration is
//! formatted as a millisecond count too large to read back, and sums saturate).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpproxyd::config::units::{format_duration, format_size, parse_duration, parse_size};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    const MAX_ROUND_TRIP: std::time::Duration = std::time::Duration::from_secs(1000 * 365 * 86_400);
    if let Ok(d) = parse_duration(text).map(|d| d.min(MAX_ROUND_TRIP)) {
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text:?}");
    }
    if let Ok(n) = parse_size(text) {
        assert_eq!(parse_size(&format_size(n)), Ok(n), "{text:?}");
    }
});
