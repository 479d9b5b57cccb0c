//! IMS 2019-08-15 on in-memory applications: `ListApplications`, `GetApplication`,
//! `CreateApplication`, `UpdateApplication`, answering in IMS's JSON shapes and error codes.

use serde_json::{json, Value};

use super::{FakeApp, Reply};

pub const VERSION: &str = "2019-08-15";

const APP_TYPES: [&str; 3] = ["WebApp", "NativeApp", "ServerApp"];

/// Runs one IMS action with `params` (the decoded query) against `apps`.
pub(crate) fn handle(
    apps: &mut Vec<FakeApp>,
    next_id: &mut u64,
    action: &str,
    params: &[(String, String)],
) -> Reply {
    let get = |name: &str| param(params, name);
    match action {
        "ListApplications" => Reply::ok(json!({
            "Applications": { "Application": apps.iter().map(app_json).collect::<Vec<_>>() }
        })),
        "GetApplication" => {
            let Some(id) = get("AppId") else {
                return missing("AppId");
            };
            match apps.iter().find(|a| a.app_id == id) {
                Some(app) => Reply::ok(json!({ "Application": app_json(app) })),
                None => not_found(id),
            }
        }
        "CreateApplication" => create(apps, next_id, params),
        "UpdateApplication" => {
            let Some(id) = get("AppId") else {
                return missing("AppId");
            };
            let Some(app) = apps.iter_mut().find(|a| a.app_id == id) else {
                return not_found(id);
            };
            if let Some(uris) = get("NewRedirectUris") {
                app.redirect_uris = split(uris);
            }
            if let Some(scopes) = get("NewPredefinedScopes") {
                app.scopes = split(scopes);
            }
            if let Some(name) = get("NewDisplayName") {
                app.display_name = name.to_string();
            }
            Reply::ok(json!({ "Application": app_json(app) }))
        }
        other => Reply::error(
            404,
            "InvalidAction.NotFound",
            format!("Specified api {other} is not found"),
        ),
    }
}

/// A non-empty parameter.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn create(apps: &mut Vec<FakeApp>, next_id: &mut u64, params: &[(String, String)]) -> Reply {
    let get = |name: &str| param(params, name);
    for required in ["AppName", "DisplayName", "AppType"] {
        if get(required).is_none() {
            return missing(required);
        }
    }
    let name = get("AppName").unwrap_or_default();
    let app_type = get("AppType").unwrap_or_default();
    if !APP_TYPES.contains(&app_type) {
        return Reply::error(400, "InvalidParameter.AppType", "AppType is invalid");
    }
    if apps.iter().any(|a| a.app_name == name) {
        return Reply::error(
            409,
            "EntityAlreadyExists.Application",
            format!("The application {name} already exists."),
        );
    }
    *next_id += 1;
    let app = FakeApp {
        app_id: next_id.to_string(),
        app_name: name.to_string(),
        display_name: get("DisplayName").unwrap_or_default().to_string(),
        app_type: app_type.to_string(),
        redirect_uris: get("RedirectUris").map(split).unwrap_or_default(),
        scopes: get("PredefinedScopes").map(split).unwrap_or_default(),
        protocol_version: get("ProtocolVersion").map(str::to_string),
        access_token_validity: get("AccessTokenValidity").and_then(|v| v.parse().ok()),
        refresh_token_validity: get("RefreshTokenValidity").and_then(|v| v.parse().ok()),
    };
    let body = json!({ "Application": app_json(&app) });
    apps.push(app);
    Reply::ok(body)
}

fn split(list: &str) -> Vec<String> {
    list.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn missing(name: &str) -> Reply {
    Reply::error(
        400,
        "MissingParameter",
        format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
    )
}

fn not_found(id: &str) -> Reply {
    Reply::error(
        404,
        "EntityNotExist.Application",
        format!("The application {id} does not exist."),
    )
}

fn app_json(app: &FakeApp) -> Value {
    json!({
        "AppId": app.app_id,
        "AppName": app.app_name,
        "DisplayName": app.display_name,
        "AppType": app.app_type,
        "AccountId": "1001",
        "TenantId": "t-1001",
        "SecretRequired": false,
        "IsMultiTenant": false,
        "AccessTokenValidity": app.access_token_validity.unwrap_or(3600),
        "RefreshTokenValidity": app.refresh_token_validity.unwrap_or(7_776_000),
        "RedirectUris": { "RedirectUri": app.redirect_uris },
        "DelegatedScope": { "PredefinedScopes": { "PredefinedScope":
            app.scopes.iter().map(|s| json!({ "Name": s, "Description": "", "Required": false }))
                .collect::<Vec<_>>() } },
        "CreateDate": "2025-01-01T00:00:00Z",
        "UpdateDate": "2025-01-01T00:00:00Z",
    })
}
