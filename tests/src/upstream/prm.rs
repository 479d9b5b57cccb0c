//! How the test upstream describes itself as an OAuth protected resource (RFC 9728): its
//! `WWW-Authenticate` challenge and its metadata, with switches for the shapes real servers
//! take (no `resource_metadata` in the challenge, metadata only at the root, a `scope`, a
//! wrong `resource`).

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
}
