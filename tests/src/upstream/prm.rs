//! How the test upstream describes itself as an OAuth protected resource (RFC 9728): its
//! `WWW-Authenticate` challenge and its metadata, with switches for the shapes real servers
//! take (no `resource_metadata` in the challenge, metadata only at the root, a `scope`, a
//! wrong `resource`, a scope needed for every request: step-up with `insufficient_scope`).

use std::sync::Arc;

/// The protected-resource switches of [`super::UpstreamOptions`].
#[derive(Debug, Clone, Default)]
pub struct ResourceOptions {
    /// The challenge leaves out `resource_metadata` (clients must try the well-known URIs).
    pub challenge_without_metadata: bool,
    /// The challenge's `scope`, if any.
    pub challenge_scope: Option<String>,
    /// Metadata only at `/.well-known/oauth-protected-resource` itself (404 with a path).
    pub metadata_at_root_only: bool,
    /// The metadata's `resource` instead of the URL it describes.
    pub resource_override: Option<String>,
    /// The metadata's `scopes_supported`.
    pub scopes_supported: Vec<String>,
    /// A scope every request's token must hold (looked up with `scope_of`), else 403
    /// `insufficient_scope` naming it.
    pub required_scope: Option<String>,
    /// The space-separated scopes of a token (e.g. from the test authorization server).
    pub scope_of: Option<ScopeLookup>,
}

/// A function from a bearer token to its space-separated scopes.
pub type ScopeFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Looks up the scopes a bearer token holds.
#[derive(Clone)]
pub struct ScopeLookup(pub Arc<ScopeFn>);

impl std::fmt::Debug for ScopeLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScopeLookup")
    }
}

impl ResourceOptions {
    /// The scope `token` lacks for this server, if any.
    pub fn missing_scope(&self, token: &str) -> Option<&str> {
        let required = self.required_scope.as_deref()?;
        let held = self.scope_of.as_ref().and_then(|f| (f.0)(token));
        let held = held.unwrap_or_default();
        (!held.split(' ').any(|s| s == required)).then_some(required)
    }
}
