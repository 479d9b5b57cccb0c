//! `keys add|list|revoke`: local client keys, and how they look in `status`.

use std::fmt::Write as _;
use std::io::Write;

use mcpproxyd_api::{ClientKeysStatus, KeyAdd, KeyAdded, KeyInfo, KeyState, Keys};

use crate::cli::KeysCommand;
use crate::client::{self, Client};
use crate::error::CtlError;
use crate::exit;
use crate::output::{emit, print_json};
use crate::time::{relative, utc};

/// Comma-separated list on the command line: entries trimmed, empty ones dropped.
fn split(list: &Option<String>) -> Vec<String> {
    list.iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub async fn execute(
    command: &KeysCommand,
    client: &Client,
    out: &mut dyn Write,
    now: u64,
) -> Result<u8, CtlError> {
    match command {
        KeysCommand::Add {
            name,
            servers,
            tools,
            expires,
            json,
        } => {
            const WHAT: &str = "POST /v1/keys";
            let request = KeyAdd {
                name: name.clone(),
                servers: split(servers),
                tools: split(tools),
                expires: expires.clone(),
            };
            let body = client.post_json("/v1/keys", &request).await?;
            if *json {
                print_json(WHAT, &body, out)?;
            } else {
                let added: KeyAdded = client::parse(WHAT, &body)?;
                emit(out, &added_text(&added, now))?;
            }
        }
        KeysCommand::List { json } => {
            const WHAT: &str = "GET /v1/keys";
            let body = client.get("/v1/keys").await?;
            if *json {
                print_json(WHAT, &body, out)?;
            } else {
                let keys: Keys = client::parse(WHAT, &body)?;
                emit(out, &list_text(&keys.keys, now))?;
            }
        }
        KeysCommand::Revoke { name, json } => {
            let path = format!("/v1/keys/{name}/revoke");
            let body = client.post_json(&path, &serde_json::json!({})).await?;
            if *json {
                print_json(&format!("POST {path}"), &body, out)?;
            } else {
                let info: KeyInfo = client::parse(&format!("POST {path}"), &body)?;
                emit(
                    out,
                    &format!(
                        "client key `{}` revoked; its open streams are closed\n",
                        info.name
                    ),
                )?;
            }
        }
    }
    Ok(exit::OK)
}

/// The new key, shown this once, and where to put it.
pub fn added_text(a: &KeyAdded, now: u64) -> String {
    let mut o = format!("client key `{}`:\n\n  {}\n\n", a.info.name, a.key);
    o.push_str(
        "It is shown only now: the daemon keeps only its SHA-256 digest. Give it to the app as\n\
         the header `Authorization: Bearer <key>` (Dify: the MCP server's headers; LangChain:\n\
         `headers=` of the connection).\n",
    );
    let _ = writeln!(o, "scope: {}", scope(&a.info));
    if let Some(t) = a.info.expires_at {
        let _ = writeln!(o, "expires: {} ({})", utc(t), relative(t, now));
    }
    o
}

fn scope(k: &KeyInfo) -> String {
    let servers = if k.servers.is_empty() {
        "every server the ACL allows".to_string()
    } else {
        format!("servers {}", k.servers.join(", "))
    };
    let tools = if k.tools.is_empty() {
        "every tool".to_string()
    } else {
        format!("tools {}", k.tools.join(", "))
    };
    format!("{servers}; {tools}")
}

fn state(k: &KeyInfo, now: u64) -> String {
    match k.state {
        KeyState::Active => match k.expires_at {
            Some(t) => format!("active, expires {}", relative(t, now)),
            None => "active".into(),
        },
        KeyState::Expired => "expired".into(),
        KeyState::Revoked => match k.revoked_at {
            Some(t) => format!("revoked {}", relative(t, now)),
            None => "revoked".into(),
        },
    }
}

fn last_use(k: &KeyInfo, now: u64) -> String {
    match k.last_used {
        Some(t) => format!("last used {}", relative(t, now)),
        None => "never used".into(),
    }
}

pub fn list_text(keys: &[KeyInfo], now: u64) -> String {
    if keys.is_empty() {
        return "no client keys; add one with `mcpproxyctl keys add NAME`\n".into();
    }
    let width = keys.iter().map(|k| k.name.len()).max().unwrap_or(0);
    let mut o = String::new();
    for k in keys {
        let _ = writeln!(
            o,
            "{:width$}  {}; {}; {}",
            k.name,
            state(k, now),
            last_use(k, now),
            scope(k)
        );
    }
    o
}

/// The `client keys` section of `status`.
pub fn status_section(o: &mut String, s: &ClientKeysStatus, now: u64) {
    o.push_str("\nclient keys\n");
    let required = if s.required_on.is_empty() {
        "on no listener".to_string()
    } else {
        format!("on {}", s.required_on.join(", "))
    };
    let _ = writeln!(o, "  required {required}");
    for k in &s.active {
        let _ = writeln!(o, "  {}: {}; {}", k.name, last_use(k, now), scope(k));
    }
    if s.active.is_empty() {
        o.push_str("  (no active key)\n");
    }
    if s.inactive > 0 {
        let _ = writeln!(
            o,
            "  {} revoked or expired (`mcpproxyctl keys list`)",
            s.inactive
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, state: KeyState) -> KeyInfo {
        KeyInfo {
            name: name.into(),
            state,
            servers: vec!["ecs".into()],
            tools: vec![],
            created: 0,
            last_used: Some(940),
            expires_at: None,
            revoked_at: Some(900),
        }
    }

    #[test]
    fn lists_state_last_use_and_scope() {
        let text = list_text(
            &[key("dify", KeyState::Active), key("old", KeyState::Revoked)],
            1000,
        );
        assert!(
            text.contains("dify  active; last used 1m ago; servers ecs; every tool"),
            "{text}"
        );
        assert!(text.contains("old   revoked"), "{text}");
        assert!(list_text(&[], 0).contains("keys add"));
    }

    #[test]
    fn the_new_key_is_printed_with_how_to_send_it() {
        let a = KeyAdded {
            key: "mcpp_abc".into(),
            info: key("dify", KeyState::Active),
        };
        let text = added_text(&a, 1000);
        assert!(text.contains("\n  mcpp_abc\n"), "{text}");
        assert!(text.contains("Authorization: Bearer"), "{text}");
    }

    #[test]
    fn status_names_where_keys_are_required() {
        let mut o = String::new();
        let s = ClientKeysStatus {
            required_on: vec!["172.17.0.1:8088".into()],
            active: vec![key("dify", KeyState::Active)],
            inactive: 1,
        };
        status_section(&mut o, &s, 1000);
        assert!(o.contains("required on 172.17.0.1:8088"), "{o}");
        assert!(o.contains("dify: last used 1m ago"), "{o}");
        assert!(o.contains("1 revoked or expired"), "{o}");
    }

    #[test]
    fn lists_split_on_commas() {
        assert_eq!(split(&Some(" ecs, ram ,,".into())), ["ecs", "ram"]);
        assert!(split(&None).is_empty());
    }
}
