//! The path normal form: never panics, and whatever it accepts a lenient upstream (percent-
//! decoding, NFKC) reads with the same segments, none of them a dot segment, a separator or a
//! control.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpproxyd::proxy::path::{check_normal, lenient_path};
use unicode_normalization::UnicodeNormalization;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let _ = lenient_path(path);
    if check_normal(path).is_err() {
        return;
    }
    for seg in path[1..].split('/') {
        let decoded = percent_encoding::percent_decode_str(seg)
            .decode_utf8()
            .expect("accepted escapes are UTF-8");
        let seen: String = decoded.nfkc().collect();
        assert!(seen != "." && seen != "..", "{path:?} hides a dot segment");
        assert!(
            !seen.contains(['/', '\\', '%']),
            "{path:?} hides a separator"
        );
        assert!(
            !seen.chars().any(|c| c.is_ascii_control()),
            "{path:?} hides a control"
        );
    }
});
