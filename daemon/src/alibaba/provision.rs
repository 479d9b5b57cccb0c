//! The OAuth application the login uses, and its rule: the default name
//! (`aliyun-cli-mcp-proxy`) is found or created; any other name must already exist and is only
//! checked (a `NativeApp` with the scope and the redirect URI), never created. A mismatch is an
//! error whose message says the exact fix; [`fix_redirect_uri`] applies the one fix the proxy
//! may make on request (`mcpproxyctl app fix`).

use super::api::ApiError;
use super::credentials::CredentialsError;
use super::ims::{Application, ImsClient, NewApplication};
use crate::config::preset::DEFAULT_OAUTH_APP_NAME;

/// Display name of the application the proxy creates (the seed's tool's).
pub const DEFAULT_DISPLAY_NAME: &str = "AliyunCLI-MCP-Proxy";
/// The only application type that can hold refresh tokens as a public client.
pub const NATIVE_APP: &str = "NativeApp";
pub const PROTOCOL_VERSION: &str = "2.1";
/// Access token lifetime of a created application: 3 hours.
pub const ACCESS_TOKEN_VALIDITY: u64 = 10_800;
/// Refresh token lifetime of a created application: 365 days.
pub const REFRESH_TOKEN_VALIDITY: u64 = 31_536_000;

/// The application a profile needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub name: String,
    pub scope: String,
    pub redirect_uri: String,
}

impl AppSpec {
    /// Whether this is the default application, which the proxy may create.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_OAUTH_APP_NAME
    }

    /// What `CreateApplication` sends for it.
    pub fn new_application(&self) -> NewApplication {
        NewApplication {
            app_name: self.name.clone(),
            display_name: DEFAULT_DISPLAY_NAME.into(),
            app_type: NATIVE_APP.into(),
            protocol_version: PROTOCOL_VERSION.into(),
            scopes: vec![self.scope.clone()],
            access_token_validity: ACCESS_TOKEN_VALIDITY,
            refresh_token_validity: REFRESH_TOKEN_VALIDITY,
            redirect_uris: vec![self.redirect_uri.clone()],
        }
    }
}

/// A usable application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub app: Application,
    /// Created just now (else found).
    pub created: bool,
}

impl Provisioned {
    /// The OAuth `client_id`.
    pub fn client_id(&self) -> &str {
        &self.app.app_id
    }
}

/// One way an existing application does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    NotNativeApp { found: String },
    MissingScope { scope: String },
    MissingRedirectUri { uri: String },
}

/// Why no usable application is at hand.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("AccessKey for IMS: {0}")]
    Credentials(#[from] CredentialsError),
    #[error("IMS: {0}")]
    Ims(#[from] ApiError),
    #[error(
        "OAuth application `{name}` does not exist; create it in the RAM console (OAuth \
         applications) as a native application with scope {scope} and redirect URI \
         {redirect_uri}, or leave oauth_app_name unset to use `{DEFAULT_OAUTH_APP_NAME}`, which \
         the proxy creates itself"
    )]
    NotFound {
        name: String,
        scope: String,
        redirect_uri: String,
    },
    #[error(
        "OAuth application `{name}` does not exist yet; it is created at the first \
         `mcpproxyctl login`"
    )]
    NotCreatedYet { name: String },
    #[error("{}", describe_mismatch(.name, .app_id, .problems))]
    Mismatch {
        name: String,
        app_id: String,
        problems: Vec<Mismatch>,
    },
}

impl ProvisionError {
    /// Whether `mcpproxyctl app fix` ([`fix_redirect_uri`]) resolves it.
    pub fn fixable_by_app_fix(&self) -> bool {
        match self {
            ProvisionError::Mismatch { problems, .. } => problems
                .iter()
                .all(|p| matches!(p, Mismatch::MissingRedirectUri { .. })),
            _ => false,
        }
    }
}

fn describe_mismatch(name: &str, app_id: &str, problems: &[Mismatch]) -> String {
    let fixes: Vec<String> = problems
        .iter()
        .map(|p| match p {
            Mismatch::NotNativeApp { found } => format!(
                "it is a {found}, not a {NATIVE_APP}, and an application's type cannot change: \
                 create a native application and set oauth_app_name to it, or leave \
                 oauth_app_name unset to use `{DEFAULT_OAUTH_APP_NAME}`"
            ),
            Mismatch::MissingScope { scope } => {
                format!("add the OAuth scope {scope} to application `{name}` in the RAM console")
            }
            Mismatch::MissingRedirectUri { uri } => format!(
                "add redirect URI {uri} to application `{name}`, or run `mcpproxyctl app fix`"
            ),
        })
        .collect();
    format!(
        "OAuth application `{name}` ({app_id}) cannot be used: {}",
        fixes.join("; ")
    )
}

/// What `app` lacks for `spec` (empty: it fits).
pub fn check(app: &Application, spec: &AppSpec) -> Vec<Mismatch> {
    let mut problems = Vec::new();
    if app.app_type != NATIVE_APP {
        problems.push(Mismatch::NotNativeApp {
            found: if app.app_type.is_empty() {
                "application of unknown type".into()
            } else {
                app.app_type.clone()
            },
        });
    }
    if !app.scopes.iter().any(|s| s == &spec.scope) {
        problems.push(Mismatch::MissingScope {
            scope: spec.scope.clone(),
        });
    }
    if !app.redirect_uris.iter().any(|u| u == &spec.redirect_uri) {
        problems.push(Mismatch::MissingRedirectUri {
            uri: spec.redirect_uri.clone(),
        });
    }
    problems
}

/// The application for `spec`, found or (default name only) created; checked either way.
pub async fn ensure_application(
    ims: &ImsClient,
    spec: &AppSpec,
) -> Result<Provisioned, ProvisionError> {
    let (app, created) = match find(ims, &spec.name).await? {
        Some(app) => (app, false),
        None if spec.is_default() => (ims.create_application(&spec.new_application()).await?, true),
        None => {
            return Err(ProvisionError::NotFound {
                name: spec.name.clone(),
                scope: spec.scope.clone(),
                redirect_uri: spec.redirect_uri.clone(),
            })
        }
    };
    let problems = check(&app, spec);
    if !problems.is_empty() {
        return Err(ProvisionError::Mismatch {
            name: spec.name.clone(),
            app_id: app.app_id.clone(),
            problems,
        });
    }
    Ok(Provisioned { app, created })
}

/// What [`fix_redirect_uri`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixOutcome {
    /// The URI was added; the application as IMS returned it.
    Added(Application),
    /// Nothing to do: the URI was there.
    AlreadyPresent(Application),
}

/// Adds `spec.redirect_uri` to the application's redirect URIs, keeping the others
/// (`mcpproxyctl app fix`). Nothing else is changed, and nothing is created.
pub async fn fix_redirect_uri(
    ims: &ImsClient,
    spec: &AppSpec,
) -> Result<FixOutcome, ProvisionError> {
    let Some(app) = find(ims, &spec.name).await? else {
        return Err(if spec.is_default() {
            ProvisionError::NotCreatedYet {
                name: spec.name.clone(),
            }
        } else {
            ProvisionError::NotFound {
                name: spec.name.clone(),
                scope: spec.scope.clone(),
                redirect_uri: spec.redirect_uri.clone(),
            }
        });
    };
    if app.redirect_uris.iter().any(|u| u == &spec.redirect_uri) {
        return Ok(FixOutcome::AlreadyPresent(app));
    }
    let mut uris = app.redirect_uris.clone();
    uris.push(spec.redirect_uri.clone());
    Ok(FixOutcome::Added(
        ims.update_redirect_uris(&app.app_id, &uris).await?,
    ))
}

/// The application named `name`, in full (`GetApplication`), if the account has one.
async fn find(ims: &ImsClient, name: &str) -> Result<Option<Application>, ApiError> {
    let listed = ims.list_applications().await?;
    match listed.into_iter().find(|a| a.app_name == name) {
        Some(app) => Ok(Some(ims.get_application(&app.app_id).await?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "http://127.0.0.1:8088/callback";

    fn spec(name: &str) -> AppSpec {
        AppSpec {
            name: name.into(),
            scope: "/acs/mcp-server".into(),
            redirect_uri: URI.into(),
        }
    }

    fn app(app_type: &str, scopes: &[&str], uris: &[&str]) -> Application {
        Application {
            app_id: "4001".into(),
            app_name: "team-app".into(),
            display_name: "Team".into(),
            app_type: app_type.into(),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            access_token_validity: None,
            refresh_token_validity: None,
        }
    }

    #[test]
    fn a_fitting_application_passes() {
        let good = app("NativeApp", &["openid", "/acs/mcp-server"], &["x", URI]);
        assert!(check(&good, &spec("team-app")).is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_fix() {
        let bad = app("WebApp", &["openid"], &["http://127.0.0.1:9000/callback"]);
        let problems = check(&bad, &spec("team-app"));
        assert_eq!(problems.len(), 3);
        let err = ProvisionError::Mismatch {
            name: "team-app".into(),
            app_id: "4001".into(),
            problems,
        };
        let text = err.to_string();
        assert!(text.contains("it is a WebApp, not a NativeApp"), "{text}");
        assert!(
            text.contains("add the OAuth scope /acs/mcp-server to application `team-app`"),
            "{text}"
        );
        assert!(
            text.contains(
                "add redirect URI http://127.0.0.1:8088/callback to application `team-app`, \
                 or run `mcpproxyctl app fix`"
            ),
            "{text}"
        );
        assert!(!err.fixable_by_app_fix());
    }

    #[test]
    fn only_a_missing_redirect_uri_is_fixable() {
        let problems = check(&app("NativeApp", &["/acs/mcp-server"], &[]), &spec("x"));
        let err = ProvisionError::Mismatch {
            name: "x".into(),
            app_id: "1".into(),
            problems,
        };
        assert!(err.fixable_by_app_fix());
    }

    #[test]
    fn the_created_application_is_the_seeds() {
        let new = spec(DEFAULT_OAUTH_APP_NAME).new_application();
        assert_eq!(new.app_name, "aliyun-cli-mcp-proxy");
        assert_eq!(new.display_name, "AliyunCLI-MCP-Proxy");
        assert_eq!(new.app_type, "NativeApp");
        assert_eq!(new.protocol_version, "2.1");
        assert_eq!(new.scopes, vec!["/acs/mcp-server".to_string()]);
        assert_eq!(
            (new.access_token_validity, new.refresh_token_validity),
            (10_800, 31_536_000)
        );
        assert_eq!(new.redirect_uris, vec![URI.to_string()]);
        assert!(spec(DEFAULT_OAUTH_APP_NAME).is_default());
        assert!(!spec("team-app").is_default());
    }
}
