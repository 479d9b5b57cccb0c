//! Tool policy: which MCP tools a server may be asked to run (`[[policy]]`), pure matching.
//!
//! A policy applies to servers by catalog name or ID, to `*` (every request), or to whole
//! upstreams. Within one policy, denials come first, as in the server ACL: a `blocked_tools`
//! glob, then a non-empty `allowed_tools` list that no glob matches, then `read_only` (a
//! mutating verb in the name). Where several policies apply, every one must allow the tool.
//!
//! Blocked globs and verbs compare case-insensitively and allowed globs case-sensitively: an
//! upstream that is lax about case can then never run a tool that differs from a blocked one
//! only in case, and an allowed list never admits more than it spells.

use serde::Serialize;

use crate::catalog::CatalogServer;
use crate::config::PolicyConfig;

/// The verbs `read_only = true` denies when `mutating_verbs` is not set. A tool name is split
/// into parts at `_ - . / : ` and space; a part whose first word (up to the next capital
/// letter or digit) is one of these, in any case, names a mutating tool: `DeleteInstance`,
/// `OOS_StartInstances`, `ecs-reboot-instance`; not `DescribeInstanceAutoRenewAttribute`.
pub const DEFAULT_MUTATING_VERBS: &[&str] = &[
    "Activate",
    "Add",
    "Allocate",
    "Apply",
    "Assign",
    "Associate",
    "Attach",
    "Authorize",
    "Batch",
    "Bind",
    "Cancel",
    "Change",
    "Clear",
    "Clone",
    "Close",
    "Config",
    "Configure",
    "Convert",
    "Copy",
    "Create",
    "Deactivate",
    "Delete",
    "Deploy",
    "Deregister",
    "Detach",
    "Disable",
    "Disassociate",
    "Downgrade",
    "Drop",
    "Edit",
    "Enable",
    "Exec",
    "Execute",
    "Expand",
    "Export",
    "Flush",
    "Grant",
    "Import",
    "Init",
    "Initialize",
    "Insert",
    "Install",
    "Invoke",
    "Join",
    "Kill",
    "Leave",
    "Lock",
    "Migrate",
    "Modify",
    "Mount",
    "Move",
    "Open",
    "Patch",
    "Publish",
    "Purchase",
    "Purge",
    "Push",
    "Put",
    "Re",
    "Reboot",
    "Recover",
    "Refresh",
    "Register",
    "Release",
    "Remove",
    "Rename",
    "Renew",
    "Replace",
    "Reset",
    "Resize",
    "Restart",
    "Restore",
    "Resume",
    "Revoke",
    "Rollback",
    "Rotate",
    "Run",
    "Scale",
    "Send",
    "Set",
    "Start",
    "Stop",
    "Submit",
    "Suspend",
    "Switch",
    "Tag",
    "Terminate",
    "Truncate",
    "Unassign",
    "Unassociate",
    "Unbind",
    "Uninstall",
    "Unlock",
    "Unmount",
    "Unregister",
    "Untag",
    "Update",
    "Upgrade",
    "Upload",
    "Write",
];

/// One policy, ready to match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Compiled {
    name: String,
    servers: Vec<String>,
    upstreams: Vec<String>,
    allowed: Vec<String>,
    blocked: Vec<String>,
    read_only: bool,
    verbs: Vec<String>,
}

impl Compiled {
    fn applies(&self, upstream: &str, server: Option<&CatalogServer>) -> bool {
        self.upstreams.iter().any(|u| u == upstream)
            || self.servers.iter().any(|e| {
                e == "*" || server.is_some_and(|s| s.name == *e || (!s.id.is_empty() && s.id == *e))
            })
    }

    fn decide(&self, tool: &str) -> ToolDecision {
        let deny = |reason| ToolDecision::Denied {
            policy: self.name.clone(),
            reason,
        };
        if let Some(g) = self.blocked.iter().find(|g| glob_match(g, tool, true)) {
            return deny(DenyReason::Blocked(g.clone()));
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|g| glob_match(g, tool, false)) {
            return deny(DenyReason::NotAllowed);
        }
        if self.read_only {
            if let Some(verb) = mutating_verb(tool, &self.verbs) {
                return deny(DenyReason::ReadOnly(verb));
            }
        }
        ToolDecision::Allowed
    }

    fn summary(&self) -> PolicySummary {
        PolicySummary {
            name: self.name.clone(),
            allowed_tools: self.allowed.clone(),
            blocked_tools: self.blocked.clone(),
            read_only: self.read_only,
        }
    }
}

/// Why a tool is denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum DenyReason {
    /// A `blocked_tools` glob matched.
    Blocked(String),
    /// `allowed_tools` is not empty and no glob in it matched.
    NotAllowed,
    /// `read_only = true` and the name starts a part with this mutating verb.
    ReadOnly(String),
    /// The path is of no catalogued server while the catalog is still to be listed, and some
    /// policy names servers: it might be one of them (fail closed).
    Unlisted,
}

/// The verdict on one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum ToolDecision {
    Allowed,
    Denied { policy: String, reason: DenyReason },
}

impl ToolDecision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, ToolDecision::Allowed)
    }

    /// One line for people: the JSON-RPC error message, logs and `acl check`.
    pub fn reason(&self) -> String {
        match self {
            ToolDecision::Allowed => "allowed by every tool policy that applies".into(),
            ToolDecision::Denied { policy, reason } => match reason {
                DenyReason::Blocked(g) => {
                    format!("denied by tool policy `{policy}`: blocked_tools entry `{g}`")
                }
                DenyReason::NotAllowed => {
                    format!("denied by tool policy `{policy}`: not in allowed_tools")
                }
                DenyReason::ReadOnly(v) => {
                    format!("denied by tool policy `{policy}`: read_only, `{v}` is a mutating verb")
                }
                DenyReason::Unlisted => format!(
                    "denied by `{policy}`: the server is not in the catalog yet and tool policies name servers"
                ),
            },
        }
    }

    /// A short label for metrics and structured logs.
    pub fn rule(&self) -> String {
        match self {
            ToolDecision::Allowed => String::new(),
            ToolDecision::Denied { policy, reason } => match reason {
                DenyReason::Blocked(g) => format!("{policy}:blocked:{g}"),
                DenyReason::NotAllowed => format!("{policy}:not_allowed"),
                DenyReason::ReadOnly(_) => format!("{policy}:read_only"),
                DenyReason::Unlisted => format!("{policy}:unlisted"),
            },
        }
    }
}

/// A policy as `mcpproxyctl servers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySummary {
    pub name: String,
    pub allowed_tools: Vec<String>,
    pub blocked_tools: Vec<String>,
    pub read_only: bool,
}

/// Every `[[policy]]` of a configuration generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPolicies {
    policies: Vec<Compiled>,
}

/// The policies that apply to one server; empty means the proxy does not look at its bodies.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    policies: &'a [Compiled],
    upstream: &'a str,
    server: Option<&'a CatalogServer>,
}

impl ToolPolicies {
    pub fn new(configs: &[PolicyConfig]) -> ToolPolicies {
        let policies = configs
            .iter()
            .map(|c| Compiled {
                name: c.name.clone(),
                servers: c.servers.clone(),
                upstreams: c.upstreams.clone(),
                allowed: c.allowed_tools.clone(),
                blocked: c.blocked_tools.clone(),
                read_only: c.read_only,
                verbs: c.mutating_verbs.clone().unwrap_or_else(|| {
                    DEFAULT_MUTATING_VERBS
                        .iter()
                        .map(|v| v.to_string())
                        .collect()
                }),
            })
            .collect();
        ToolPolicies { policies }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policies for requests routed to `upstream` whose path belongs to `server`.
    pub fn applied<'a>(
        &'a self,
        upstream: &'a str,
        server: Option<&'a CatalogServer>,
    ) -> Applied<'a> {
        Applied {
            policies: &self.policies,
            upstream,
            server,
        }
    }

    /// May `tool` be called on `server` (of `upstream`)? The one entry point other checks
    /// (client key scopes) combine with.
    pub fn tool_allowed(
        &self,
        upstream: &str,
        server: Option<&CatalogServer>,
        tool: &str,
    ) -> ToolDecision {
        self.applied(upstream, server).tool_allowed(tool)
    }

    /// Whether some policy names servers (not only `*` or upstreams).
    pub fn names_servers(&self) -> bool {
        self.policies
            .iter()
            .any(|p| p.servers.iter().any(|s| s != "*"))
    }

    /// `servers` entries (not `*`) that name no server of `catalog`: they match nothing yet.
    pub fn unresolved(&self, catalog: &crate::catalog::Catalog) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.policies.iter().flat_map(|p| &p.servers) {
            if e != "*" && catalog.find(e).next().is_none() && !out.contains(e) {
                out.push(e.clone());
            }
        }
        out
    }
}

impl<'a> Applied<'a> {
    fn each(&self) -> impl Iterator<Item = &'a Compiled> + '_ {
        self.policies
            .iter()
            .filter(|p| p.applies(self.upstream, self.server))
    }

    /// Whether any policy applies (only then is a request body read).
    pub fn any(&self) -> bool {
        self.each().next().is_some()
    }

    /// The first denial of any applicable policy, else allowed.
    pub fn tool_allowed(&self, tool: &str) -> ToolDecision {
        self.each()
            .map(|p| p.decide(tool))
            .find(|d| !d.is_allowed())
            .unwrap_or(ToolDecision::Allowed)
    }

    /// The applicable policies, for `mcpproxyctl servers`.
    pub fn summaries(&self) -> Vec<PolicySummary> {
        self.each().map(Compiled::summary).collect()
    }

    /// The applicable policies, owned, for a response body that outlives the request.
    pub fn owned(&self) -> ServerPolicy {
        ServerPolicy {
            policies: self.each().cloned().collect(),
            unlisted: false,
        }
    }
}

/// The policies of one server, detached from the configuration generation.
#[derive(Debug, Clone, Default)]
pub struct ServerPolicy {
    policies: Vec<Compiled>,
    unlisted: bool,
}

/// The policy name of [`DenyReason::Unlisted`] denials.
pub const UNLISTED_POLICY: &str = "catalog";

impl ServerPolicy {
    /// Denies every tool as [`DenyReason::Unlisted`] (on top of the policies).
    pub fn unlisted(mut self) -> ServerPolicy {
        self.unlisted = true;
        self
    }

    /// As [`Applied::tool_allowed`].
    pub fn tool_allowed(&self, tool: &str) -> ToolDecision {
        if self.unlisted {
            return ToolDecision::Denied {
                policy: UNLISTED_POLICY.into(),
                reason: DenyReason::Unlisted,
            };
        }
        self.policies
            .iter()
            .map(|p| p.decide(tool))
            .find(|d| !d.is_allowed())
            .unwrap_or(ToolDecision::Allowed)
    }
}

/// The mutating verb in `tool`, if one starts any of its parts (see [`DEFAULT_MUTATING_VERBS`]).
pub fn mutating_verb(tool: &str, verbs: &[String]) -> Option<String> {
    tool.split(['_', '-', '.', '/', ':', ' '])
        .filter_map(first_word)
        .find_map(|word| verbs.iter().find(|v| v.eq_ignore_ascii_case(word)).cloned())
}

/// The first word of a part, camel-case style: `Delete` of `DeleteInstance`, `delete` of
/// `deleteInstance`, `DELETE` of `DELETE`, `ECS` of `ECSDescribe`.
fn first_word(part: &str) -> Option<&str> {
    let chars: Vec<(usize, char)> = part.char_indices().collect();
    let (_, first) = *chars.first()?;
    if !first.is_alphabetic() {
        return None;
    }
    let acronym = first.is_uppercase() && chars.get(1).is_some_and(|(_, c)| c.is_uppercase());
    let end = if acronym {
        let run = chars.iter().take_while(|(_, c)| c.is_uppercase()).count();
        let next_lower = chars.get(run).is_some_and(|(_, c)| c.is_lowercase());
        let len = if next_lower { run - 1 } else { run };
        chars.get(len).map_or(part.len(), |(i, _)| *i)
    } else {
        chars
            .iter()
            .skip(1)
            .find(|(_, c)| !c.is_lowercase())
            .map_or(part.len(), |(i, _)| *i)
    };
    Some(&part[..end])
}

/// `*` matches any run of characters, `?` exactly one; everything else itself.
pub fn glob_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let fold = |c: char| {
        if ignore_case {
            c.to_lowercase().next().unwrap_or(c)
        } else {
            c
        }
    };
    let p: Vec<char> = pattern.chars().map(fold).collect();
    let t: Vec<char> = text.chars().map(fold).collect();
    // Linear-time wildcard matching: remember the last `*` and retry from one further on.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
