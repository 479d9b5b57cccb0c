//! The application rule against the fake's IMS.

use mcpproxyd::alibaba::api::ApiError;
use mcpproxyd::alibaba::credentials::{Sources, ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET};
use mcpproxyd::alibaba::provision::{
    ensure_application, fix_redirect_uri, AppSpec, FixOutcome, Mismatch, ProvisionError,
};
use mcpproxyd::alibaba::{Region, DEFAULT_OAUTH_APP_NAME, DEFAULT_SCOPE};
use mcpproxyd::config::{AlibabaProfile, RefreshMargin};

use super::*;

const URI: &str = "http://127.0.0.1:8088/callback";
const OTHER_URI: &str = "http://127.0.0.1:9000/callback";

fn spec(name: &str) -> AppSpec {
    AppSpec {
        name: name.into(),
        scope: DEFAULT_SCOPE.into(),
        redirect_uri: URI.into(),
    }
}

#[tokio::test]
async fn the_default_application_is_created_when_missing() {
    let fake = fake(|_| {}).await;
    let got = ensure_application(
        &ims(&fake, daemon_key(&fake)),
        &spec(DEFAULT_OAUTH_APP_NAME),
    )
    .await
    .unwrap();
    assert!(got.created);
    assert_eq!(fake.actions(), ["ListApplications", "CreateApplication"]);
    let apps = fake.applications();
    assert_eq!(apps.len(), 1);
    let app = &apps[0];
    assert_eq!(got.client_id(), app.app_id);
    assert_eq!(app.app_name, "aliyun-cli-mcp-proxy");
    assert_eq!(app.display_name, "AliyunCLI-MCP-Proxy");
    assert_eq!(app.app_type, "NativeApp");
    assert_eq!(app.protocol_version.as_deref(), Some("2.1"));
    assert_eq!(app.scopes, [DEFAULT_SCOPE]);
    assert_eq!(app.redirect_uris, [URI]);
    assert_eq!(app.access_token_validity, Some(10_800));
    assert_eq!(app.refresh_token_validity, Some(31_536_000));
    assert!(fake
        .requests()
        .iter()
        .all(|r| r.signature_ok() && r.status == 200));
}

#[tokio::test]
async fn the_default_application_is_reused_when_present() {
    let fake = fake(|_| {}).await;
    let client = ims(&fake, daemon_key(&fake));
    let first = ensure_application(&client, &spec(DEFAULT_OAUTH_APP_NAME))
        .await
        .unwrap();
    let second = ensure_application(&client, &spec(DEFAULT_OAUTH_APP_NAME))
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(first.client_id(), second.client_id());
    assert_eq!(fake.count("CreateApplication"), 1);
    assert_eq!(fake.actions()[2..], ["ListApplications", "GetApplication"]);
}

#[tokio::test]
async fn a_wrong_redirect_uri_is_detected_and_fixed_on_request() {
    let fake = fake(|o| {
        o.applications = vec![FakeApp::native(
            "4100",
            DEFAULT_OAUTH_APP_NAME,
            &[DEFAULT_SCOPE],
            &[OTHER_URI],
        )]
    })
    .await;
    let client = ims(&fake, daemon_key(&fake));
    let err = ensure_application(&client, &spec(DEFAULT_OAUTH_APP_NAME))
        .await
        .unwrap_err();
    let ProvisionError::Mismatch { problems, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        problems,
        &[Mismatch::MissingRedirectUri { uri: URI.into() }]
    );
    assert!(err.fixable_by_app_fix());
    assert!(
        err.to_string().contains(
            "add redirect URI http://127.0.0.1:8088/callback to application \
             `aliyun-cli-mcp-proxy`, or run `mcpproxyctl app fix`"
        ),
        "{err}"
    );
    // Detecting changes nothing: the seed's rule, repairs only on request.
    assert_eq!(
        fake.count("CreateApplication") + fake.count("UpdateApplication"),
        0
    );

    let fixed = fix_redirect_uri(&client, &spec(DEFAULT_OAUTH_APP_NAME))
        .await
        .unwrap();
    let FixOutcome::Added(app) = fixed else {
        panic!("{fixed:?}");
    };
    assert_eq!(app.redirect_uris, [OTHER_URI, URI], "the old URI is kept");
    assert_eq!(fake.applications()[0].redirect_uris, [OTHER_URI, URI]);
    let update = fake
        .requests()
        .into_iter()
        .find(|r| r.action.as_deref() == Some("UpdateApplication"))
        .unwrap();
    assert_eq!(update.query_value("AppId"), Some("4100"));
    assert_eq!(
        update.query_value("NewRedirectUris"),
        Some("http://127.0.0.1:9000/callback;http://127.0.0.1:8088/callback")
    );

    let now = ensure_application(&client, &spec(DEFAULT_OAUTH_APP_NAME))
        .await
        .unwrap();
    assert_eq!(now.client_id(), "4100");
    assert!(matches!(
        fix_redirect_uri(&client, &spec(DEFAULT_OAUTH_APP_NAME)).await,
        Ok(FixOutcome::AlreadyPresent(_))
    ));
    assert_eq!(fake.count("UpdateApplication"), 1);
}

#[tokio::test]
async fn a_custom_name_is_never_created() {
    let fake = fake(|_| {}).await;
    let client = ims(&fake, daemon_key(&fake));
    let err = ensure_application(&client, &spec("team-app"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProvisionError::NotFound { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("`team-app` does not exist") && text.contains(URI),
        "{text}"
    );
    let fix = fix_redirect_uri(&client, &spec("team-app"))
        .await
        .unwrap_err();
    assert!(matches!(fix, ProvisionError::NotFound { .. }));
    assert_eq!(fake.count("CreateApplication"), 0);
    assert!(fake.applications().is_empty());
}

#[tokio::test]
async fn a_custom_application_is_validated() {
    let fake = fake(|o| {
        o.applications = vec![
            FakeApp::new("4200", "web-app", "WebApp", &["openid"], &[OTHER_URI]),
            FakeApp::native("4300", "team-app", &["openid", DEFAULT_SCOPE], &[URI]),
        ]
    })
    .await;
    let client = ims(&fake, daemon_key(&fake));
    let err = ensure_application(&client, &spec("web-app"))
        .await
        .unwrap_err();
    let ProvisionError::Mismatch {
        app_id, problems, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(app_id, "4200");
    assert_eq!(problems.len(), 3, "{err}");
    assert!(!err.fixable_by_app_fix());
    let good = ensure_application(&client, &spec("team-app"))
        .await
        .unwrap();
    assert_eq!((good.client_id(), good.created), ("4300", false));
    assert_eq!(fake.count("CreateApplication"), 0);
}

#[tokio::test]
async fn ims_errors_keep_code_and_message() {
    let fake = fake(|_| {}).await;
    fake.set_ims_unavailable(true);
    let err = ensure_application(
        &ims(&fake, daemon_key(&fake)),
        &spec(DEFAULT_OAUTH_APP_NAME),
    )
    .await
    .unwrap_err();
    let ProvisionError::Ims(ApiError::Service {
        status,
        code,
        message,
        request_id,
        ..
    }) = &err
    else {
        panic!("{err}");
    };
    assert_eq!((*status, code.as_str()), (503, "ServiceUnavailable"));
    assert!(message.contains("temporary failure"));
    assert!(request_id.starts_with("FAKE-"));
}

#[tokio::test]
async fn the_login_hook_provisions_from_a_profile() {
    let fake = fake(|_| {}).await;
    let profile = AlibabaProfile {
        region: Region::Cn,
        oauth_app_name: DEFAULT_OAUTH_APP_NAME.into(),
        scope: DEFAULT_SCOPE.into(),
        refresh_margin: RefreshMargin::Auto,
        redirect_uri: None,
        signin_url: Url::parse("https://127.0.0.1:9/oauth2/v1/auth").unwrap(),
        oauth_url: Url::parse("https://127.0.0.1:9").unwrap(),
        ims_endpoint: endpoint(&fake),
        access_key: "env".into(),
        ca_file: None,
    };
    let sources = Sources::default()
        .with_env(ENV_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_ID)
        .with_env(ENV_ACCESS_KEY_SECRET, DEFAULT_ACCESS_KEY_SECRET);
    let http = daemon_http(&fake);
    let got = mcpproxyd::alibaba::provision(&profile, &http, URI, &sources)
        .await
        .unwrap();
    assert!(got.created);
    assert_eq!(fake.applications()[0].redirect_uris, [URI]);

    // A redirect_uri in the profile wins over the listen address's.
    let with_own = AlibabaProfile {
        redirect_uri: Some(Url::parse("http://localhost:7000/callback").unwrap()),
        ..profile.clone()
    };
    let err = mcpproxyd::alibaba::provision(&with_own, &http, URI, &sources)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("http://localhost:7000/callback"),
        "{err}"
    );
    let fixed = mcpproxyd::alibaba::fix_app(&with_own, &http, URI, &sources)
        .await
        .unwrap();
    assert!(matches!(fixed, FixOutcome::Added(_)));

    let no_key = mcpproxyd::alibaba::provision(&profile, &http, URI, &Sources::default())
        .await
        .unwrap_err();
    assert!(matches!(no_key, ProvisionError::Credentials(_)), "{no_key}");
}
