//! The order in which a pre-registered client picks its token-endpoint authentication.

use super::{assertion_audience, AuthMethod, Endpoints};

fn methods(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_key_is_used_where_the_server_lists_private_key_jwt_then_the_secret_then_none() {
    let jwt = Some(AuthMethod::PrivateKeyJwt);
    let both = methods(&["client_secret_basic", "private_key_jwt"]);
    assert_eq!(AuthMethod::choose(&both, true, true), jwt);
    assert_eq!(AuthMethod::choose(&both, false, true), jwt);
    let secrets = methods(&["client_secret_post"]);
    assert_eq!(
        AuthMethod::choose(&secrets, true, true),
        Some(AuthMethod::Post),
        "the server does not take keys: the secret"
    );
    assert_eq!(AuthMethod::choose(&secrets, false, false), None);
    // A server that lists nothing: the key if it is all the client has, else the secret.
    assert_eq!(AuthMethod::choose(&[], false, true), jwt);
    assert_eq!(AuthMethod::choose(&[], true, true), Some(AuthMethod::Basic));
    assert_eq!(
        AuthMethod::parse(Some("private_key_jwt")),
        AuthMethod::PrivateKeyJwt
    );
}

#[test]
fn assertions_are_for_the_issuer_else_the_token_endpoint() {
    let mut e = Endpoints {
        token: "https://as.example/oauth/token".into(),
        ..Endpoints::default()
    };
    assert_eq!(assertion_audience(&e), "https://as.example/oauth/token");
    e.issuer = Some("https://as.example".into());
    assert_eq!(assertion_audience(&e), "https://as.example");
}
