//! The ACL: never panics, and no path in normal form that a lenient upstream could route to the
//! blocked server (a segment naming it, in any spelling) is allowed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpproxyd::catalog::{Catalog, CatalogServer};
use mcpproxyd::config::AclConfig;
use mcpproxyd::proxy::acl::Acl;
use mcpproxyd::proxy::path::{check_normal, lenient_segment};

fn acl() -> Acl {
    let server = |name: &str, id: &str| CatalogServer {
        upstream: "u".into(),
        name: name.into(),
        id: id.into(),
        mcp: Some(format!("/accounts/1/custom/{name}/id/{id}/mcp")),
        sse: Some(format!("/accounts/1/custom/{name}/id/{id}/sse")),
        scopes: vec![format!("/accounts/1/custom/{name}/id/{id}")],
    };
    let catalog = Catalog {
        servers: vec![server("ecs", "ECS01"), server("ram", "RAM01")],
    };
    let config = AclConfig {
        allowed: Vec::new(),
        blocked: vec!["ram".into()],
    };
    Acl::new(&config, &catalog)
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let acl = acl();
    let decision = acl.check(path);
    let _ = decision.reason();
    if check_normal(path).is_ok() && decision.is_allowed() {
        for seg in path.split('/') {
            let l = lenient_segment(seg);
            assert!(
                l != "ram" && l != "ram01",
                "{path:?} reaches the blocked server"
            );
        }
    }
});
