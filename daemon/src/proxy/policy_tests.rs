//! Unit tests of tool policy matching.

use super::*;

fn cfg(servers: &[&str], allowed: &[&str], blocked: &[&str], read_only: bool) -> PolicyConfig {
    PolicyConfig {
        name: "p".into(),
        servers: servers.iter().map(|s| s.to_string()).collect(),
        upstreams: vec![],
        allowed_tools: allowed.iter().map(|s| s.to_string()).collect(),
        blocked_tools: blocked.iter().map(|s| s.to_string()).collect(),
        read_only,
        mutating_verbs: None,
    }
}

fn server(name: &str, id: &str) -> CatalogServer {
    CatalogServer {
        upstream: "u".into(),
        name: name.into(),
        id: id.into(),
        mcp: Some(format!("/x/{id}/mcp")),
        sse: None,
        scopes: vec![format!("/x/{id}")],
    }
}

fn allowed(p: &ToolPolicies, s: Option<&CatalogServer>, tool: &str) -> bool {
    p.tool_allowed("u", s, tool).is_allowed()
}

#[test]
fn globs() {
    assert!(glob_match("Describe*", "DescribeInstances", false));
    assert!(glob_match("*Delete*", "BatchDeleteThings", false));
    assert!(glob_match("*", "", false));
    assert!(glob_match("a?c", "abc", false));
    assert!(!glob_match("a?c", "ac", false));
    assert!(!glob_match("Describe*", "describeInstances", false));
    assert!(glob_match("Describe*", "describeInstances", true));
    assert!(glob_match("*Delete*", "xDELETEy", true));
    assert!(!glob_match("echo", "echo2", false));
    assert!(glob_match("a*b*c", "aXXbYYbc", false));
    assert!(!glob_match("a*b*c", "aXXbYYb", false));
    assert!(glob_match("**x", "yx", false));
    assert!(glob_match("é*", "été", false));
}

#[test]
fn verbs_start_parts() {
    let verbs: Vec<String> = DEFAULT_MUTATING_VERBS
        .iter()
        .map(|v| v.to_string())
        .collect();
    let m = |t: &str| mutating_verb(t, &verbs);
    assert_eq!(m("DeleteInstance").as_deref(), Some("Delete"));
    assert_eq!(m("OOS_StartInstances").as_deref(), Some("Start"));
    assert_eq!(m("ecs-reboot-instance").as_deref(), Some("Reboot"));
    assert_eq!(m("DELETE_INSTANCE").as_deref(), Some("Delete"));
    assert_eq!(m("start_ecs_instances").as_deref(), Some("Start"));
    assert_eq!(m("deleteInstance").as_deref(), Some("Delete"));
    assert_eq!(m("ReInitDisk").as_deref(), Some("Re"));
    assert_eq!(m("DescribeInstanceAutoRenewAttribute"), None);
    assert_eq!(m("DescribeSendFileResults"), None);
    assert_eq!(m("Settings"), None, "a verb is a whole word");
    assert_eq!(m("Runtime"), None);
    assert_eq!(m("ECSDescribeInstances"), None);
    assert_eq!(m("echo"), None);
    assert_eq!(m(""), None);
    assert_eq!(m("123"), None);
}

#[test]
fn alibaba_fixture_is_classified() {
    let p = ToolPolicies::new(&[cfg(&["*"], &[], &[], true)]);
    let fixture = include_str!("../../../tests/fixtures/alibaba_tools.txt");
    let mut n = 0;
    for line in fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (kind, tool) = line.split_once(' ').unwrap();
        assert_eq!(allowed(&p, None, tool), kind == "r", "{tool}");
        n += 1;
    }
    assert!(n > 80);
}

#[test]
fn blocked_first_then_allowed_then_read_only() {
    let p = ToolPolicies::new(&[cfg(
        &["ecs"],
        &["Describe*", "RunCommand"],
        &["*Delete*"],
        true,
    )]);
    let ecs = server("ecs", "ECS01");
    assert!(allowed(&p, Some(&ecs), "DescribeInstances"));
    assert!(
        !allowed(&p, Some(&ecs), "DescribeDeleteProtection"),
        "blocked wins"
    );
    assert!(
        !allowed(&p, Some(&ecs), "ListUsers"),
        "not in allowed_tools"
    );
    assert_eq!(
        p.tool_allowed("u", Some(&ecs), "RunCommand"),
        ToolDecision::Denied {
            policy: "p".into(),
            reason: DenyReason::ReadOnly("Run".into())
        },
        "read_only denies even an allowed mutating tool"
    );
    assert_eq!(
        p.tool_allowed("u", Some(&ecs), "deleteinstance"),
        ToolDecision::Denied {
            policy: "p".into(),
            reason: DenyReason::Blocked("*Delete*".into())
        },
        "blocked globs ignore case"
    );
    assert!(
        !allowed(&p, Some(&ecs), "describeInstances"),
        "allowed globs keep case"
    );
}

#[test]
fn policies_apply_by_name_id_star_or_upstream() {
    let p = ToolPolicies::new(&[cfg(&["ECS01"], &[], &["echo"], false)]);
    let ecs = server("ecs", "ECS01");
    let oss = server("oss", "OSS01");
    assert!(!allowed(&p, Some(&ecs), "echo"), "by ID");
    assert!(allowed(&p, Some(&oss), "echo"));
    assert!(
        allowed(&p, None, "echo"),
        "an uncatalogued path has no server"
    );
    assert!(p.applied("u", Some(&ecs)).any());
    let by_name = ToolPolicies::new(&[cfg(&["ecs"], &[], &["echo"], false)]);
    assert!(!allowed(&by_name, Some(&ecs), "echo"));
    assert!(by_name.applied("u", Some(&ecs)).any());
    assert!(!by_name.applied("u", Some(&oss)).any());
    let star = ToolPolicies::new(&[cfg(&["*"], &[], &["echo"], false)]);
    assert!(!allowed(&star, None, "echo"));
    assert!(!allowed(&star, Some(&oss), "echo"));
    let mut up = cfg(&[], &[], &["echo"], false);
    up.upstreams = vec!["u".into()];
    let up = ToolPolicies::new(&[up]);
    assert!(!allowed(&up, None, "echo"));
    assert!(up.tool_allowed("other", None, "echo").is_allowed());
    assert!(!up.applied("other", None).any());
}

#[test]
fn every_applicable_policy_must_allow() {
    let mut a = cfg(&["*"], &[], &[], true);
    a.name = "all-read-only".into();
    let mut b = cfg(&["ecs"], &["Describe*"], &[], false);
    b.name = "ecs-describe".into();
    let p = ToolPolicies::new(&[a, b]);
    let ecs = server("ecs", "E");
    let oss = server("oss", "O");
    assert!(allowed(&p, Some(&ecs), "DescribeInstances"));
    assert!(!allowed(&p, Some(&ecs), "ListBuckets"));
    assert!(allowed(&p, Some(&oss), "ListBuckets"));
    let d = p.tool_allowed("u", Some(&oss), "DeleteBucket");
    assert_eq!(
        d.reason(),
        "denied by tool policy `all-read-only`: read_only, `Delete` is a mutating verb"
    );
    assert_eq!(d.rule(), "all-read-only:read_only");
    assert_eq!(p.applied("u", Some(&ecs)).summaries().len(), 2);
}

#[test]
fn custom_verbs_replace_the_list() {
    let mut c = cfg(&["*"], &[], &[], true);
    c.mutating_verbs = Some(vec!["Frob".into()]);
    let p = ToolPolicies::new(&[c]);
    assert!(!allowed(&p, None, "FrobWidget"));
    assert!(allowed(&p, None, "DeleteInstance"));
}

#[test]
fn unresolved_names() {
    let p = ToolPolicies::new(&[cfg(&["ecs", "nope"], &[], &["x"], false)]);
    let catalog = crate::catalog::Catalog {
        servers: vec![server("ecs", "E")],
    };
    assert_eq!(p.unresolved(&catalog), vec!["nope".to_string()]);
    assert!(ToolPolicies::new(&[cfg(&["*"], &[], &["x"], false)])
        .unresolved(&catalog)
        .is_empty());
}

#[test]
fn unlisted_denies_everything() {
    let p = ToolPolicies::new(&[cfg(&["ecs"], &[], &["x"], false)]);
    assert!(p.names_servers());
    assert!(!ToolPolicies::new(&[cfg(&["*"], &[], &["x"], false)]).names_servers());
    let sp = p.applied("u", None).owned().unlisted();
    let d = sp.tool_allowed("DescribeInstances");
    assert_eq!(d.rule(), "catalog:unlisted");
    assert!(d.reason().contains("not in the catalog yet"));
}
