//! Access control: blocked list first, then allowed list (when not empty).
//!
//! Entries are server names or IDs, resolved through the [`Catalog`] to the paths of those
//! servers, or path prefixes starting with `/`. Paths are in normal form before they get here
//! (see `path`), and the upstream sees the same path with only the mount prefix replaced.
//!
//! The two lists compare differently, each failing closed. An allowed entry matches the
//! catalogued path exactly, on whole segments and case-sensitively: any other spelling is not
//! allowed. A blocked entry is compared as a lenient upstream could route (ignoring case,
//! percent-encoding, Unicode compatibility forms, surrounding spaces and trailing dots), and a
//! blocked name or ID is refused wherever it stands as a path segment: an upstream may route by
//! ID under another server's name or account.

use serde::Serialize;

use crate::catalog::Catalog;
use crate::config::AclConfig;
use crate::proxy::path;

/// How blocked entries are compared, for reasons and `acl check`.
const LENIENT: &str =
    "compared ignoring case, percent-encoding, Unicode compatibility forms and trailing dots and spaces";

/// One list entry with what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    entry: String,
    prefixes: Vec<String>,
    /// The entry's and its servers' names and IDs in [`path::lenient_segment`] form (none for a
    /// path entry).
    names: Vec<String>,
}

impl Rule {
    fn new(entry: &str, catalog: &Catalog) -> Rule {
        let prefixes = if entry.starts_with('/') {
            vec![path::canonical_escapes(entry).into_owned()]
        } else {
            catalog
                .find(entry)
                .flat_map(|s| s.scopes.iter())
                .map(|p| path::canonical_escapes(p).into_owned())
                .collect()
        };
        let mut names = Vec::new();
        if !entry.starts_with('/') {
            let servers = catalog.find(entry);
            let spellings = std::iter::once(entry)
                .chain(servers.flat_map(|s| [s.name.as_str(), s.id.as_str()]));
            for name in spellings.map(path::lenient_segment) {
                if !name.is_empty() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Rule {
            entry: entry.to_string(),
            prefixes,
            names,
        }
    }

    /// The precise match of the allowed list. `local_path` has its escapes in canonical case, as
    /// the prefixes do.
    fn matches(&self, local_path: &str) -> bool {
        self.prefixes.iter().any(|p| path::under(local_path, p))
    }

    /// The lenient match of the blocked list: why `local_path` falls under this entry, if it does.
    fn blocks(&self, local_path: &str) -> Option<String> {
        let lenient = path::lenient_path(local_path);
        if let Some(p) = self
            .prefixes
            .iter()
            .find(|p| path::under(&lenient, &path::lenient_path(p)))
        {
            return Some(format!("the path is under `{p}` ({LENIENT})"));
        }
        local_path
            .split('/')
            .find(|seg| self.names.contains(&path::lenient_segment(seg)))
            .map(|seg| {
                format!(
                    "path segment `{seg}` names it (a blocked name or ID is refused wherever it \
                     stands as a segment, {LENIENT})"
                )
            })
    }
}

/// Which list decided, for logs, 403 bodies and `acl check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    /// No list applies, or an allowed entry matched (`rule` names it).
    Allowed { rule: Option<String> },
    /// A blocked entry matched; `because` says how.
    Blocked { rule: String, because: String },
    /// The allowed list is not empty and nothing in it matched.
    NotAllowed,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// A one-line reason fit for a 403 body and a log line.
    pub fn reason(&self) -> String {
        match self {
            Decision::Allowed { rule: None } => "allowed: no access list applies".into(),
            Decision::Allowed { rule: Some(r) } => {
                format!("allowed by allowed_servers entry `{r}`")
            }
            Decision::Blocked { rule, because } => {
                format!("blocked by blocked_servers entry `{rule}`: {because}")
            }
            Decision::NotAllowed => {
                "not in the allowed list (allowed_servers; its entries match the \
                                     catalogued paths exactly, case-sensitively)"
                    .into()
            }
        }
    }

    /// The rule as a short label, for metrics and structured logs.
    pub fn rule(&self) -> String {
        match self {
            Decision::Allowed { rule } => rule.clone().unwrap_or_default(),
            Decision::Blocked { rule, .. } => format!("blocked:{rule}"),
            Decision::NotAllowed => "not_allowed".into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Acl {
    allowed: Vec<Rule>,
    blocked: Vec<Rule>,
}

impl Acl {
    pub fn new(config: &AclConfig, catalog: &Catalog) -> Acl {
        Acl {
            allowed: config
                .allowed
                .iter()
                .map(|e| Rule::new(e, catalog))
                .collect(),
            blocked: config
                .blocked
                .iter()
                .map(|e| Rule::new(e, catalog))
                .collect(),
        }
    }

    /// Decides a local request path (already in normal form). Escapes that differ only in hex
    /// case name the same octets to the upstream, so they compare equal here.
    pub fn check(&self, local_path: &str) -> Decision {
        let local_path = &*path::canonical_escapes(local_path);
        for rule in &self.blocked {
            if let Some(because) = rule.blocks(local_path) {
                return Decision::Blocked {
                    rule: rule.entry.clone(),
                    because,
                };
            }
        }
        if self.allowed.is_empty() {
            return Decision::Allowed { rule: None };
        }
        match self.allowed.iter().find(|r| r.matches(local_path)) {
            Some(rule) => Decision::Allowed {
                rule: Some(rule.entry.clone()),
            },
            None => Decision::NotAllowed,
        }
    }

    /// Names and IDs that match no catalogued server (they match nothing).
    pub fn unresolved(&self) -> Vec<String> {
        self.blocked
            .iter()
            .chain(&self.allowed)
            .filter(|r| !r.entry.starts_with('/') && r.prefixes.is_empty())
            .map(|r| r.entry.clone())
            .collect()
    }

    pub fn allowed_entries(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().map(|r| r.entry.as_str())
    }

    pub fn blocked_entries(&self) -> impl Iterator<Item = &str> {
        self.blocked.iter().map(|r| r.entry.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogServer;

    fn catalog() -> Catalog {
        let server = |name: &str, id: &str, base: &str| CatalogServer {
            upstream: "u".into(),
            name: name.into(),
            id: id.into(),
            mcp: Some(format!("{base}/mcp")),
            sse: Some(format!("{base}/sse")),
            scopes: vec![base.into()],
        };
        Catalog {
            servers: vec![
                server("ecs", "ECS01", "/accounts/1/custom/ecs/id/ECS01"),
                server("oss", "OSS01", "/accounts/1/custom/oss/id/OSS01"),
                server("ram", "RAM01", "/accounts/1/custom/ram/id/RAM01"),
                server("s1", "S1", "/x/s1"),
                server("s10", "S10", "/x/s10"),
            ],
        }
    }

    fn acl(allowed: &[&str], blocked: &[&str]) -> Acl {
        let cfg = AclConfig {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            blocked: blocked.iter().map(|s| s.to_string()).collect(),
        };
        Acl::new(&cfg, &catalog())
    }

    const ECS: &str = "/accounts/1/custom/ecs/id/ECS01/mcp";
    const OSS_SSE: &str = "/accounts/1/custom/oss/id/OSS01/sse";
    const RAM: &str = "/accounts/1/custom/ram/id/RAM01/mcp";

    #[test]
    fn no_lists_allow_everything() {
        assert!(acl(&[], &[]).check("/anything").is_allowed());
    }

    #[test]
    fn blocked_wins_over_allowed() {
        let a = acl(&["ram", "ecs"], &["RAM01"]);
        assert!(matches!(a.check(RAM), Decision::Blocked { rule, .. } if rule == "RAM01"));
        assert!(a.check(ECS).is_allowed());
    }

    #[test]
    fn allowed_list_denies_everything_else() {
        let a = acl(&["ecs", "OSS01"], &[]);
        assert!(a.check(ECS).is_allowed());
        assert!(a.check(OSS_SSE).is_allowed());
        assert!(a
            .check("/accounts/1/custom/oss/id/OSS01/message?x")
            .is_allowed());
        assert_eq!(a.check(RAM), Decision::NotAllowed);
        assert_eq!(a.check("/uncatalogued/mcp"), Decision::NotAllowed);
        assert_eq!(a.check("/"), Decision::NotAllowed);
        assert_eq!(a.check("/accounts/1/custom/ecs"), Decision::NotAllowed);
    }

    #[test]
    fn prefixes_match_whole_segments_case_sensitively() {
        let a = acl(&["/x/s1"], &[]);
        assert!(a.check("/x/s1").is_allowed());
        assert!(a.check("/x/s1/mcp").is_allowed());
        assert_eq!(a.check("/x/s10/mcp"), Decision::NotAllowed);
        assert_eq!(a.check("/X/s1/mcp"), Decision::NotAllowed);
        assert_eq!(a.check("/x/s1x"), Decision::NotAllowed);
        let by_name = acl(&["s1"], &[]);
        assert!(by_name.check("/x/s1/mcp").is_allowed());
        assert_eq!(by_name.check("/x/s10/mcp"), Decision::NotAllowed);
        let blocked = acl(&[], &["/x/s1"]);
        assert!(blocked.check("/x/s10/mcp").is_allowed());
        assert!(!blocked.check("/x/s1/sse").is_allowed());
    }

    #[test]
    fn escapes_match_whatever_their_hex_case() {
        let a = acl(&[], &["/y/%e2%82%ac"]);
        assert!(!a.check("/y/%E2%82%AC/mcp").is_allowed());
        assert!(!a.check("/y/%e2%82%Ac").is_allowed());
        assert!(a.check("/y/%E2%82%AD").is_allowed());
    }

    fn blocked_by(a: &Acl, path: &str) -> Option<String> {
        match a.check(path) {
            Decision::Blocked { rule, .. } => Some(rule),
            _ => None,
        }
    }

    #[test]
    fn a_blocked_server_is_blocked_under_every_spelling() {
        let a = acl(&[], &["ram"]);
        for p in [
            RAM,
            "/accounts/1/custom/ecs/id/RAM01/mcp",
            "/accounts/2/custom/ram/id/RAM01/mcp",
            "/accounts/1/custom/RAM/id/x/mcp",
            "/accounts/1/custom/ram/id/ram01/mcp",
            "/accounts/1/custom/ram./id/x",
            "/accounts/1/custom/ram%20/id/x",
            "/accounts/1/custom/Ram.%20./id/x",
            "/accounts/1/custom/%EF%BD%92%EF%BD%81%EF%BD%8D/id/x",
            "/ACCOUNTS/1/CUSTOM/X/ID/Ram01/mcp",
        ] {
            assert_eq!(blocked_by(&a, p).as_deref(), Some("ram"), "{p}");
        }
        for p in [
            ECS,
            "/accounts/1/custom/ecs/id/ECS01/program",
            "/accounts/1/custom/ramp/id/RAM012/mcp",
            "/x/s1/mcp",
        ] {
            assert!(a.check(p).is_allowed(), "{p}");
        }
        // A name the catalog does not know yet is still refused as a segment.
        let unknown = acl(&[], &["iam"]);
        assert!(!unknown
            .check("/accounts/1/custom/IAM/id/I1/mcp")
            .is_allowed());
        // Path entries compare leniently too.
        let by_path = acl(&[], &["/accounts/1/custom/ram"]);
        assert!(!by_path.check("/Accounts/1/custom/RAM./id/x").is_allowed());
        assert!(by_path.check("/accounts/1/custom/ramp").is_allowed());
    }

    #[test]
    fn reasons_explain_how_each_list_compares() {
        let a = acl(&["ecs"], &["ram"]);
        let reason = a.check("/accounts/1/custom/ecs/id/ram01/mcp").reason();
        assert!(reason.contains("`ram01`"), "{reason}");
        assert!(reason.contains("ignoring case"), "{reason}");
        let reason = a.check("/accounts/1/custom/ECS/id/ECS01/mcp").reason();
        assert!(reason.contains("exactly"), "{reason}");
    }

    #[test]
    fn names_are_exact() {
        let a = acl(&["ec", "ECS"], &[]);
        assert_eq!(a.check(ECS), Decision::NotAllowed);
        assert_eq!(a.unresolved(), vec!["ec".to_string(), "ECS".to_string()]);
    }
}
