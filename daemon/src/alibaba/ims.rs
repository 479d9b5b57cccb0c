//! Client of the IMS OAuth-application API (version 2019-08-15, RPC style: `POST /` with the
//! parameters in the query, signed with the user's AccessKey): `ListApplications`,
//! `GetApplication`, `CreateApplication`, `UpdateApplication`.

use std::sync::Arc;

use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::api::{self, ApiError, Call};
use super::credentials::AccessKey;

pub const VERSION: &str = "2019-08-15";

/// An OAuth application as IMS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// The OAuth `client_id`.
    pub app_id: String,
    pub app_name: String,
    pub display_name: String,
    /// `WebApp`, `NativeApp` or `ServerApp`.
    pub app_type: String,
    pub redirect_uris: Vec<String>,
    /// Its predefined OAuth scopes.
    pub scopes: Vec<String>,
    pub access_token_validity: Option<u64>,
    pub refresh_token_validity: Option<u64>,
}

/// What `CreateApplication` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApplication {
    pub app_name: String,
    pub display_name: String,
    pub app_type: String,
    pub protocol_version: String,
    pub scopes: Vec<String>,
    pub access_token_validity: u64,
    pub refresh_token_validity: u64,
    pub redirect_uris: Vec<String>,
}

/// IMS, reached through `endpoint` with `key`.
#[derive(Debug, Clone)]
pub struct ImsClient {
    http: reqwest::Client,
    endpoint: Url,
    key: Arc<AccessKey>,
}

impl ImsClient {
    /// `http` comes from [`crate::http_client::build`].
    pub fn new(http: reqwest::Client, endpoint: Url, key: Arc<AccessKey>) -> ImsClient {
        ImsClient {
            http,
            endpoint,
            key,
        }
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Every OAuth application of the account.
    pub async fn list_applications(&self) -> Result<Vec<Application>, ApiError> {
        let resp: ListResponse = self.call("ListApplications", Vec::new()).await?;
        Ok(resp
            .applications
            .map(|a| a.application)
            .unwrap_or_default()
            .into_iter()
            .map(Application::from)
            .collect())
    }

    pub async fn get_application(&self, app_id: &str) -> Result<Application, ApiError> {
        let resp: OneResponse = self
            .call("GetApplication", vec![param("AppId", app_id)])
            .await?;
        Ok(resp.application.into())
    }

    pub async fn create_application(&self, app: &NewApplication) -> Result<Application, ApiError> {
        let query = vec![
            param("AppName", &app.app_name),
            param("DisplayName", &app.display_name),
            param("AppType", &app.app_type),
            param("ProtocolVersion", &app.protocol_version),
            param("PredefinedScopes", &app.scopes.join(";")),
            param(
                "AccessTokenValidity",
                &app.access_token_validity.to_string(),
            ),
            param(
                "RefreshTokenValidity",
                &app.refresh_token_validity.to_string(),
            ),
            param("RedirectUris", &app.redirect_uris.join(";")),
        ];
        let resp: OneResponse = self.call("CreateApplication", query).await?;
        Ok(resp.application.into())
    }

    /// Replaces the application's redirect URIs with `redirect_uris`.
    pub async fn update_redirect_uris(
        &self,
        app_id: &str,
        redirect_uris: &[String],
    ) -> Result<Application, ApiError> {
        let query = vec![
            param("AppId", app_id),
            param("NewRedirectUris", &redirect_uris.join(";")),
        ];
        let resp: OneResponse = self.call("UpdateApplication", query).await?;
        Ok(resp.application.into())
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        query: Vec<(String, String)>,
    ) -> Result<T, ApiError> {
        let call = Call {
            method: Method::POST,
            endpoint: &self.endpoint,
            path: "/",
            query,
            action,
            version: VERSION,
        };
        api::call(&self.http, &self.key, call).await
    }
}

fn param(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

// === wire shapes ===

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListResponse {
    #[serde(default)]
    applications: Option<AppList>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AppList {
    #[serde(default)]
    application: Vec<RawApp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OneResponse {
    application: RawApp,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawApp {
    app_id: String,
    #[serde(default)]
    app_name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    app_type: String,
    #[serde(default)]
    redirect_uris: Option<RedirectUris>,
    #[serde(default)]
    delegated_scope: Option<DelegatedScope>,
    #[serde(default)]
    access_token_validity: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token_validity: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RedirectUris {
    #[serde(default)]
    redirect_uri: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DelegatedScope {
    #[serde(default)]
    predefined_scopes: Option<PredefinedScopes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PredefinedScopes {
    #[serde(default)]
    predefined_scope: Vec<Scope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Scope {
    name: String,
}

impl From<RawApp> for Application {
    fn from(raw: RawApp) -> Application {
        // Validities arrive as numbers; accept numeric strings too.
        let seconds = |v: Option<serde_json::Value>| match v? {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        };
        Application {
            app_id: raw.app_id,
            app_name: raw.app_name,
            display_name: raw.display_name,
            app_type: raw.app_type,
            redirect_uris: raw
                .redirect_uris
                .map(|r| r.redirect_uri)
                .unwrap_or_default(),
            scopes: raw
                .delegated_scope
                .and_then(|d| d.predefined_scopes)
                .map(|p| p.predefined_scope.into_iter().map(|s| s.name).collect())
                .unwrap_or_default(),
            access_token_validity: seconds(raw.access_token_validity),
            refresh_token_validity: seconds(raw.refresh_token_validity),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shapes() {
        let list: ListResponse = serde_json::from_str(
            r#"{"RequestId": "r1", "Applications": {"Application": [
                {"AppId": "4001", "AppName": "aliyun-cli-mcp-proxy",
                 "DisplayName": "AliyunCLI-MCP-Proxy", "AppType": "NativeApp",
                 "RedirectUris": {"RedirectUri": ["http://127.0.0.1:8088/callback"]},
                 "DelegatedScope": {"PredefinedScopes": {"PredefinedScope": [
                     {"Name": "/acs/mcp-server", "Description": "", "Required": false}]}},
                 "AccessTokenValidity": 10800, "RefreshTokenValidity": "31536000",
                 "SecretRequired": false, "TenantId": "t"},
                {"AppId": "4002"}
            ]}}"#,
        )
        .unwrap();
        let apps: Vec<Application> = list
            .applications
            .unwrap()
            .application
            .into_iter()
            .map(Application::from)
            .collect();
        assert_eq!(
            apps[0],
            Application {
                app_id: "4001".into(),
                app_name: "aliyun-cli-mcp-proxy".into(),
                display_name: "AliyunCLI-MCP-Proxy".into(),
                app_type: "NativeApp".into(),
                redirect_uris: vec!["http://127.0.0.1:8088/callback".into()],
                scopes: vec!["/acs/mcp-server".into()],
                access_token_validity: Some(10800),
                refresh_token_validity: Some(31_536_000),
            }
        );
        assert_eq!(apps[1].app_id, "4002");
        assert!(apps[1].redirect_uris.is_empty() && apps[1].scopes.is_empty());
        let empty: ListResponse = serde_json::from_str(r#"{"RequestId": "r"}"#).unwrap();
        assert!(empty.applications.is_none());
    }
}
