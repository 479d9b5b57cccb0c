//! The admin API's request bodies: any bytes are parsed or refused, never a panic, and what
//! parses serialises and parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpproxyd_api::{AclCheck, LoginStart};

fuzz_target!(|data: &[u8]| {
    if let Ok(check) = serde_json::from_slice::<AclCheck>(data) {
        let again: AclCheck =
            serde_json::from_str(&serde_json::to_string(&check).unwrap()).unwrap();
        assert_eq!(again, check);
    }
    if let Ok(login) = serde_json::from_slice::<LoginStart>(data) {
        let again: LoginStart =
            serde_json::from_str(&serde_json::to_string(&login).unwrap()).unwrap();
        assert_eq!(again, login);
    }
});
