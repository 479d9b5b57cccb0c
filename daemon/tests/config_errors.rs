//! Every configuration error names the file, the line and the key; flags override the file.

use std::os::unix::fs::PermissionsExt;

use mcpproxyd::config::{self, ConfigError, Overrides, Region, Source};

fn load(text: &str) -> Result<config::Config, ConfigError> {
    load_with(text, &Overrides::default())
}

fn load_with(text: &str, flags: &Overrides) -> Result<config::Config, ConfigError> {
    config::load_str(Source::File("/etc/mcpproxyd/test.toml".into()), text, flags)
}

fn err(text: &str) -> ConfigError {
    match load(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    let e = err("[listen]\naddresses = [\"127.0.0.1:8088\"]\nallowed_origin = []\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(
        e.to_string().starts_with("/etc/mcpproxyd/test.toml:3"),
        "{e}"
    );
    assert!(e.to_string().contains("allowed_origin"), "{e}");
    let e = err("\n\n[limitz]\n");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn bad_values_name_file_line_and_key() {
    let cases = [
        ("[limits]\nconnect_timeout = \"10 parsecs\"\n", 2, "limits.connect_timeout"),
        ("[limits]\n\nmax_request_body = \"lots\"\n", 3, "limits.max_request_body"),
        ("[limits]\nmax_connections = 0\n", 2, "limits.max_connections"),
        ("[limits]\nworkers = 0\n", 2, "limits.workers"),
        ("[limits]\n\nworkers = 65\n", 3, "limits.workers"),
        ("[listen]\naddresses = [\"nowhere\"]\n", 2, "listen.addresses"),
        ("[listen]\naddresses = [\"0.0.0.0:8088\"]\n", 2, "listen.addresses"),
        ("[listen]\nallowed_origins = [\"localhost:3000\"]\n", 2, "listen.allowed_origins"),
        ("[store]\nkind = \"cloud\"\n", 2, "store.kind"),
        ("[log]\ntarget = \"syslog\"\n", 2, "log.target"),
        ("[acl]\nallowed_servers = [\"/a/../b\"]\n", 2, "acl.allowed_servers"),
        ("[auth.a]\nkind = \"alibaba\"\nregion = \"EU\"\n", 3, "auth.a.region"),
        ("[auth.a]\nkind = \"oauth\"\ntoken_file = \"/x\"\n", 3, "auth.a.token_file"),
        ("[auth.a]\nkind = \"magic\"\n", 2, "auth.a.kind"),
        (
            "[auth.a]\nkind = \"oauth\"\n[[upstream]]\nname = \"u\"\nurl = \"http://example.com\"\nauth = \"a\"\n",
            5,
            "upstream[0].url",
        ),
        (
            "[auth.a]\nkind = \"oauth\"\n[[upstream]]\nname = \"u\"\nurl = \"https://example.com\"\nauth = \"b\"\n",
            6,
            "upstream[0].auth",
        ),
        (
            "[auth.a]\nkind = \"oauth\"\n[[upstream]]\nurl = \"https://e.com\"\nmount = \"gh\"\n",
            5,
            "upstream[0].mount",
        ),
        (
            "[auth.a]\nkind = \"oauth\"\n[[upstream]]\nurl = \"https://e.com\"\nhttp_version = \"2\"\n",
            5,
            "upstream[0].http_version",
        ),
    ];
    for (text, line, key) in cases {
        let e = err(text);
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(line), key),
            "{text}\n=> {e}"
        );
        assert!(
            e.to_string()
                .contains(&format!("test.toml:{line}: {key}: ")),
            "{e}"
        );
    }
}

#[test]
fn plain_http_upstream_needs_opt_in_and_loopback() {
    let base = "[auth.a]\nkind = \"oauth\"\n[[upstream]]\nauth = \"a\"\n";
    assert!(load(&format!("{base}url = \"http://127.0.0.1:9\"\n")).is_err());
    assert!(load(&format!(
        "{base}url = \"http://10.0.0.1:9\"\nallow_http = true\n"
    ))
    .is_err());
    assert!(load(&format!(
        "{base}url = \"http://127.0.0.1:9\"\nallow_http = true\n"
    ))
    .is_ok());
    assert!(load(&format!("{base}url = \"https://user:pw@example.com\"\n")).is_err());
}

#[test]
fn static_tokens_must_be_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "secret-token-value\n").unwrap();
    let text = format!("[auth.s]\nkind = \"static\"\ntoken_file = {token:?}\n");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = err(&text);
    assert_eq!(e.key, "auth.s.token_file");
    assert!(e.message.contains("chmod 600"), "{e}");
    assert!(!e.to_string().contains("secret-token-value"));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = load(&text).unwrap();
    let rendered = c.render();
    assert!(!rendered.contains("secret-token-value"), "{rendered}");
    assert!(!format!("{c:?}").contains("secret-token-value"));
    std::fs::write(&token, "\n").unwrap();
    assert!(err(&text).message.contains("no token"));
}

#[test]
fn flags_override_the_file() {
    let text = "[listen]\naddresses = [\"127.0.0.1:8088\", \"[::1]:8090\"]\n[acl]\nallowed_servers = [\"a\"]\n";
    let flags = Overrides {
        host: Some("localhost".into()),
        port: Some(0),
        region: Some("intl".into()),
        upstream: Some("https://mcp.example.com/base/path".into()),
        allowed_servers: Some(vec![]),
        blocked_servers: Some(vec!["ram".into()]),
        ..Default::default()
    };
    let c = load_with(text, &flags).unwrap();
    assert_eq!(c.listen.addresses[0], "127.0.0.1:0".parse().unwrap());
    assert_eq!(c.listen.addresses[1], "[::1]:8090".parse().unwrap());
    // --upstream keeps its base path (the seed's tool dropped it).
    assert_eq!(
        c.upstreams[0].url.as_str(),
        "https://mcp.example.com/base/path"
    );
    assert_eq!(c.upstreams[0].base_path, "/base/path");
    assert!(c.acl.allowed.is_empty());
    assert_eq!(c.acl.blocked, vec!["ram".to_string()]);
    match &c.auth["alibaba"] {
        config::AuthProfile::Alibaba(a) => {
            assert_eq!(a.region, Region::Intl);
            assert_eq!(a.oauth_url.as_str(), "https://oauth.alibabacloud.com/");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn region_moves_a_preset_upstream_url_but_keeps_the_operators_own() {
    let intl = Overrides {
        region: Some("INTL".into()),
        ..Default::default()
    };
    let with_url = |url: &str| {
        format!("[[upstream]]\nname = \"alibaba\"\nauth = \"alibaba\"\nurl = \"{url}\"\n[auth.alibaba]\nkind = \"alibaba\"\n")
    };
    // The CN preset written out (as older example configs did) follows the region.
    let c = load_with(
        &with_url("https://openapi-mcp.cn-hangzhou.aliyuncs.com"),
        &intl,
    )
    .unwrap();
    assert_eq!(
        c.upstreams[0].url.as_str(),
        "https://openapi-mcp.ap-southeast-1.aliyuncs.com/"
    );
    // So does a preset URL that disagrees with the file's own region.
    let text = with_url("https://openapi-mcp.cn-hangzhou.aliyuncs.com/") + "region = \"INTL\"\n";
    let c = load(&text).unwrap();
    assert_eq!(
        c.upstreams[0].url.as_str(),
        "https://openapi-mcp.ap-southeast-1.aliyuncs.com/"
    );
    // Empty means unset: the region's endpoint.
    let c = load_with(&with_url(""), &intl).unwrap();
    assert_eq!(
        c.upstreams[0].url.as_str(),
        "https://openapi-mcp.ap-southeast-1.aliyuncs.com/"
    );
    // A URL of the operator's own is kept, from the file or from --upstream.
    let c = load_with(&with_url("https://mcp.example.com/mcp"), &intl).unwrap();
    assert_eq!(c.upstreams[0].url.as_str(), "https://mcp.example.com/mcp");
    let flags = Overrides {
        upstream: Some("https://openapi-mcp.cn-hangzhou.aliyuncs.com".into()),
        ..intl.clone()
    };
    let c = load_with(&with_url(""), &flags).unwrap();
    assert_eq!(
        c.upstreams[0].url.as_str(),
        "https://openapi-mcp.cn-hangzhou.aliyuncs.com/"
    );
}

#[test]
fn region_picks_the_upstream_when_no_url_is_set() {
    let flags = Overrides {
        region: Some("INTL".into()),
        ..Default::default()
    };
    let c = config::load_str(Source::Defaults, "", &flags).unwrap();
    assert_eq!(
        c.upstreams[0].url.as_str(),
        "https://openapi-mcp.ap-southeast-1.aliyuncs.com/"
    );
    let e = config::load_str(
        Source::Defaults,
        "",
        &Overrides {
            region: Some("mars".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown region `mars`"), "{e}");
}
