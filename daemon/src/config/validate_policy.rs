//! `[[policy]]`: tool policies as written, and their validation into [`PolicyConfig`].

use serde::Deserialize;

use super::locate::{Locator, Seg};
use super::ConfigError;

/// One `[[policy]]` table as users write it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    /// A name for messages and logs; default `policy-N` (N counts from 1).
    pub name: Option<String>,
    /// Catalog server names or IDs, or `"*"` for every request.
    pub servers: Vec<String>,
    /// Upstream names: every request routed to them, catalogued or not.
    pub upstreams: Vec<String>,
    /// Tool name globs (`*`, `?`); when not empty, other tools are denied. Case-sensitive.
    pub allowed_tools: Vec<String>,
    /// Tool name globs that are denied, whatever else says. Case-insensitive.
    pub blocked_tools: Vec<String>,
    /// Deny tools whose name starts a part with a mutating verb.
    pub read_only: bool,
    /// Replaces the built-in list of mutating verbs (with `read_only = true`).
    pub mutating_verbs: Option<Vec<String>>,
}

/// A validated tool policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    pub name: String,
    pub servers: Vec<String>,
    pub upstreams: Vec<String>,
    pub allowed_tools: Vec<String>,
    pub blocked_tools: Vec<String>,
    pub read_only: bool,
    /// `None`: the built-in list ([`crate::proxy::policy::DEFAULT_MUTATING_VERBS`]).
    pub mutating_verbs: Option<Vec<String>>,
}

type Result<T> = std::result::Result<T, ConfigError>;

/// Validates every policy; `upstreams` are the names of the configured upstreams.
pub(super) fn policies(
    raw: &[RawPolicy],
    upstreams: &[String],
    at: &Locator<'_>,
) -> Result<Vec<PolicyConfig>> {
    let mut out: Vec<PolicyConfig> = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let policy = policy(i, p, upstreams, at)?;
        if out.iter().any(|o| o.name == policy.name) {
            return Err(at.error(
                &[Seg::Key("policy"), Seg::Index(i), Seg::Key("name")],
                format!("policy name `{}` is used twice", policy.name),
            ));
        }
        out.push(policy);
    }
    Ok(out)
}

fn policy(i: usize, p: &RawPolicy, upstreams: &[String], at: &Locator<'_>) -> Result<PolicyConfig> {
    let key = |k: &'static str| [Seg::Key("policy"), Seg::Index(i), Seg::Key(k)];
    let name = match &p.name {
        None => format!("policy-{}", i + 1),
        Some(n) => {
            let n = n.trim();
            if n.is_empty() || n.chars().any(|c| c.is_control() || c == '`') {
                return Err(at.error(&key("name"), "a policy name is a non-empty line of text"));
            }
            n.to_string()
        }
    };
    let servers = names(&p.servers).map_err(|m| at.error(&key("servers"), m))?;
    if servers.len() > 1 && servers.iter().any(|s| s == "*") {
        return Err(at.error(
            &key("servers"),
            "`*` already means every server; list it alone",
        ));
    }
    let upstream_names = names(&p.upstreams).map_err(|m| at.error(&key("upstreams"), m))?;
    if let Some(u) = upstream_names.iter().find(|u| !upstreams.contains(u)) {
        return Err(at.error(
            &key("upstreams"),
            format!(
                "no upstream is named `{u}` (upstreams: {})",
                upstreams.join(", ")
            ),
        ));
    }
    if servers.is_empty() && upstream_names.is_empty() {
        return Err(at.error(
            &key("servers"),
            "say where the policy applies: servers = [\"NAME\", \"ID\"] or [\"*\"], or upstreams = [\"NAME\"]",
        ));
    }
    let allowed_tools = globs(&p.allowed_tools).map_err(|m| at.error(&key("allowed_tools"), m))?;
    let blocked_tools = globs(&p.blocked_tools).map_err(|m| at.error(&key("blocked_tools"), m))?;
    let mutating_verbs = match &p.mutating_verbs {
        None => None,
        Some(_) if !p.read_only => {
            return Err(at.error(
                &key("mutating_verbs"),
                "has no effect without read_only = true",
            ))
        }
        Some(list) => Some(verbs(list).map_err(|m| at.error(&key("mutating_verbs"), m))?),
    };
    if allowed_tools.is_empty() && blocked_tools.is_empty() && !p.read_only {
        return Err(at.error(
            &key("servers"),
            "this policy allows every tool; set allowed_tools, blocked_tools or read_only",
        ));
    }
    Ok(PolicyConfig {
        name,
        servers,
        upstreams: upstream_names,
        allowed_tools,
        blocked_tools,
        read_only: p.read_only,
        mutating_verbs,
    })
}

/// The policies as TOML, for `--check-config` (the verbs in force written out).
pub(super) fn render(policies: &[PolicyConfig]) -> toml::Value {
    let strings =
        |l: &[String]| toml::Value::Array(l.iter().cloned().map(toml::Value::String).collect());
    let tables = policies.iter().map(|p| {
        let mut t = toml::Table::new();
        t.insert("name".into(), toml::Value::String(p.name.clone()));
        t.insert("servers".into(), strings(&p.servers));
        t.insert("upstreams".into(), strings(&p.upstreams));
        t.insert("allowed_tools".into(), strings(&p.allowed_tools));
        t.insert("blocked_tools".into(), strings(&p.blocked_tools));
        t.insert("read_only".into(), toml::Value::Boolean(p.read_only));
        if let Some(v) = &p.mutating_verbs {
            t.insert("mutating_verbs".into(), strings(v));
        }
        toml::Value::Table(t)
    });
    toml::Value::Array(tables.collect())
}

fn names(list: &[String]) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    for entry in list {
        let e = entry.trim();
        if e.is_empty() {
            return Err("an empty name matches nothing; remove it".into());
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_string());
        }
    }
    Ok(out)
}

fn globs(list: &[String]) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    for g in list {
        if g.trim().is_empty() || g.trim() != g {
            return Err(format!(
                "`{g}` is not a tool name glob (no spaces around it; `*` and `?` are wildcards)"
            ));
        }
        if g.chars().any(char::is_control) {
            return Err("a tool name glob has no control characters".into());
        }
        out.push(g.clone());
    }
    Ok(out)
}

fn verbs(list: &[String]) -> std::result::Result<Vec<String>, String> {
    if list.is_empty() {
        return Err(
            "an empty list makes read_only deny nothing; leave the key out for the built-in list"
                .into(),
        );
    }
    let mut out = Vec::new();
    for v in list {
        let mut chars = v.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_lowercase());
        if !ok {
            return Err(format!(
                "`{v}` is not a verb word; write it capitalised, letters only, e.g. \"Delete\""
            ));
        }
        out.push(v.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, Config, ConfigError, Overrides, Source};

    /// Two lines before the policies; the upstream is the built-in `alibaba` preset.
    const HEAD: &str = "[log]\nlevel = \"info\"\n";

    fn load(policy: &str) -> Result<Config, ConfigError> {
        let text = format!("{HEAD}{policy}");
        load_str(Source::File("t.toml".into()), &text, &Overrides::default())
    }

    fn err(policy: &str) -> String {
        load(policy).unwrap_err().to_string()
    }

    #[test]
    fn parses_policies_with_defaults() {
        let c = load(
            "[[policy]]\nservers = [\"ecs\", \"ECS01\"]\nblocked_tools = [\"*Delete*\"]\n\
             [[policy]]\nname = \"ro\"\nupstreams = [\"alibaba\"]\nread_only = true\n\
             mutating_verbs = [\"Frob\"]\n",
        )
        .unwrap();
        assert_eq!(c.policies.len(), 2);
        assert_eq!(c.policies[0].name, "policy-1");
        assert_eq!(c.policies[0].servers, ["ecs", "ECS01"]);
        assert_eq!(c.policies[0].mutating_verbs, None);
        assert_eq!(c.policies[1].name, "ro");
        assert_eq!(c.policies[1].upstreams, ["alibaba"]);
        assert_eq!(c.policies[1].mutating_verbs, Some(vec!["Frob".to_string()]));
        assert!(load("").unwrap().policies.is_empty());
    }

    #[test]
    fn errors_name_file_line_and_key() {
        // The policy starts on line 3, after HEAD.
        assert_eq!(
            err("[[policy]]\nservers = [\"*\"]\nallowed_tools = [\" x\"]\n"),
            "t.toml:5: policy[0].allowed_tools: ` x` is not a tool name glob (no spaces around it; `*` and `?` are wildcards)"
        );
        assert_eq!(
            err("[[policy]]\nservers = [\"*\"]\nblocked_tools = [\"x\"]\nread_onyl = true\n"),
            "t.toml:6: read_onyl: unknown field `read_onyl`, expected one of `name`, `servers`, `upstreams`, `allowed_tools`, `blocked_tools`, `read_only`, `mutating_verbs`"
        );
    }

    #[test]
    fn rendered_policies_parse_back() {
        let c = load("[[policy]]\nname = \"ro\"\nservers = [\"*\"]\nread_only = true\nmutating_verbs = [\"Frob\"]\n").unwrap();
        let text = c.render();
        assert!(text.contains("[[policy]]"), "{text}");
        let again = load_str(Source::Defaults, &text, &Overrides::default()).unwrap();
        assert_eq!(again.policies, c.policies);
    }

    #[test]
    fn refuses_doubtful_policies() {
        let cases = [
            ("[[policy]]\nblocked_tools = [\"x\"]\n", "say where the policy applies"),
            ("[[policy]]\nservers = [\"*\"]\n", "allows every tool"),
            ("[[policy]]\nservers = [\"*\", \"ecs\"]\nread_only = true\n", "list it alone"),
            ("[[policy]]\nservers = [\"\"]\nread_only = true\n", "empty name"),
            ("[[policy]]\nupstreams = [\"nope\"]\nread_only = true\n", "no upstream is named `nope`"),
            ("[[policy]]\nservers = [\"*\"]\nblocked_tools = [\"x\"]\nmutating_verbs = [\"Frob\"]\n", "without read_only"),
            ("[[policy]]\nservers = [\"*\"]\nread_only = true\nmutating_verbs = []\n", "empty list"),
            ("[[policy]]\nservers = [\"*\"]\nread_only = true\nmutating_verbs = [\"delete\"]\n", "not a verb word"),
            ("[[policy]]\nservers = [\"*\"]\nread_only = true\nmutating_verbs = [\"Re-Init\"]\n", "not a verb word"),
            ("[[policy]]\nname = \"\"\nservers = [\"*\"]\nread_only = true\n", "non-empty line"),
            ("[[policy]]\nname = \"a\"\nservers = [\"*\"]\nread_only = true\n[[policy]]\nname = \"a\"\nservers = [\"x\"]\nread_only = true\n", "used twice"),
            ("[[policy]]\nservers = \"ecs\"\nread_only = true\n", "invalid type"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.starts_with("t.toml:"), "{e}");
        }
    }
}
