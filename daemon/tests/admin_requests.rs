//! Property tests of the admin API's request parsing (the types the daemon and `mcpproxyctl`
//! share): every request round-trips through JSON, an unknown field is always refused (requests
//! are parsed strictly), and no input makes the parser panic.

use mcpproxyd_api::{AclCheck, LoginCode, LoginStart, ProfileRequest};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(any::<String>())
}

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
) -> Result<(), TestCaseError> {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    prop_assert_eq!(&back, value, "{}", text);
    Ok(())
}

/// `value` as a JSON object with one more field, `name`.
fn with_extra<T: Serialize>(value: &T, name: &str) -> String {
    let mut v = serde_json::to_value(value).unwrap();
    v.as_object_mut()
        .unwrap()
        .insert(name.to_string(), serde_json::json!(1));
    v.to_string()
}

const KNOWN: &[&str] = &[
    "path", "tool", "key", "profile", "paste", "device", "code", "url",
];

proptest! {
    #[test]
    fn requests_round_trip(
        path in any::<String>(),
        tool in opt_text(),
        key in opt_text(),
        profile in opt_text(),
        paste in any::<bool>(),
        device in any::<bool>(),
        code in opt_text(),
        url in opt_text(),
    ) {
        round_trips(&AclCheck { path, tool, key })?;
        round_trips(&LoginStart { profile: profile.clone(), paste, device })?;
        round_trips(&LoginCode { code, url })?;
        round_trips(&ProfileRequest { profile })?;
    }

    #[test]
    fn unknown_fields_are_refused(name in "[a-z_]{1,12}", path in "/[a-z/]{0,20}") {
        prop_assume!(!KNOWN.contains(&name.as_str()));
        let check = AclCheck { path, tool: None, key: None };
        prop_assert!(serde_json::from_str::<AclCheck>(&with_extra(&check, &name)).is_err());
        let login = LoginStart::default();
        prop_assert!(serde_json::from_str::<LoginStart>(&with_extra(&login, &name)).is_err());
        let code = LoginCode::default();
        prop_assert!(serde_json::from_str::<LoginCode>(&with_extra(&code, &name)).is_err());
        let profile = ProfileRequest::default();
        prop_assert!(serde_json::from_str::<ProfileRequest>(&with_extra(&profile, &name)).is_err());
    }

    #[test]
    fn no_input_makes_the_parsers_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_slice::<AclCheck>(&bytes);
        let _ = serde_json::from_slice::<LoginStart>(&bytes);
        let _ = serde_json::from_slice::<LoginCode>(&bytes);
        let _ = serde_json::from_slice::<ProfileRequest>(&bytes);
    }
}
