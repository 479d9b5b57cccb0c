//! Unit tests of [`super`] (pipeline.rs).

use super::*;

#[test]
fn reserved_paths() {
    assert!(
        reserved("/callback").is_ok(),
        "answered by the login, not refused"
    );
    assert!(reserved("/callback/x").is_err());
    assert!(reserved("/.well-known/oauth-protected-resource").is_err());
    assert!(reserved("/.well-known/oauth-authorization-server/x").is_err());
    assert!(reserved("/.well-known/openid-configuration").is_err());
    assert!(reserved("/gh/.well-known/oauth-protected-resource").is_err());
    assert!(reserved("/callbacks").is_ok());
    assert!(reserved("/x/callback").is_ok());
    assert!(reserved("/.well-known/other").is_ok());
    assert!(reserved("/mcp").is_ok());
}
