//! Scope step-up (MCP authorization, Scope Challenge Handling): an upstream `403` with
//! `error="insufficient_scope"` records the scopes the upstream wants, together with the ones
//! the token holds, so that the next `mcpproxyctl login` asks for the union. A server that
//! keeps refusing scopes the token already holds is given up on after [`MAX_FUTILE`] such
//! answers, so a misconfigured server cannot send the operator round in circles.

use std::collections::BTreeSet;

/// Challenges for scopes already held before the daemon stops asking for a new login.
pub const MAX_FUTILE: u32 = 3;

/// What a profile's upstreams asked for beyond its token.
#[derive(Debug, Default)]
pub struct StepUp {
    needed: BTreeSet<String>,
    futile: u32,
}

/// What the proxy tells the client after an `insufficient_scope` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenged {
    /// A login asking for `scopes` (held and needed) should help.
    LoginNeeded { scopes: Vec<String> },
    /// The upstream refuses scopes the token holds, again and again.
    GivenUp { scopes: Vec<String> },
}

impl StepUp {
    /// Records an `insufficient_scope` answer asking for `asked`, with the token holding `held`.
    pub fn challenged(&mut self, asked: &[String], held: &[String]) -> Challenged {
        let held: BTreeSet<&String> = held.iter().collect();
        if asked.iter().all(|s| held.contains(s)) {
            self.futile += 1;
        }
        self.needed.extend(asked.iter().cloned());
        self.needed.extend(held.into_iter().cloned());
        let scopes = self.scopes();
        if self.futile >= MAX_FUTILE {
            Challenged::GivenUp { scopes }
        } else {
            Challenged::LoginNeeded { scopes }
        }
    }

    /// A login granted `held`: what it covers is no longer needed.
    pub fn granted(&mut self, held: &[String]) {
        if self.needed.iter().all(|s| held.contains(s)) {
            self.needed.clear();
        }
    }

    /// The scopes the next login should ask for (empty: nothing recorded).
    pub fn scopes(&self) -> Vec<String> {
        self.needed.iter().cloned().collect()
    }
}

/// The `scope` of a `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."` header,
/// `None` for any other challenge.
pub fn insufficient_scope(header: &str) -> Option<Vec<String>> {
    use crate::auth::oauth::discovery::challenge_param;
    if challenge_param(header, "error")? != "insufficient_scope" {
        return None;
    }
    let scope = challenge_param(header, "scope").unwrap_or_default();
    Some(scope.split_whitespace().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_union_is_asked_for_and_a_login_that_grants_it_clears_it() {
        let mut s = StepUp::default();
        let c = s.challenged(&v(&["write"]), &v(&["read"]));
        assert_eq!(
            c,
            Challenged::LoginNeeded {
                scopes: v(&["read", "write"])
            }
        );
        s.granted(&v(&["read"]));
        assert_eq!(s.scopes(), v(&["read", "write"]));
        s.granted(&v(&["read", "write"]));
        assert!(s.scopes().is_empty());
    }

    #[test]
    fn refusing_held_scopes_again_and_again_is_given_up_on() {
        let mut s = StepUp::default();
        for _ in 1..MAX_FUTILE {
            assert!(matches!(
                s.challenged(&v(&["read"]), &v(&["read"])),
                Challenged::LoginNeeded { .. }
            ));
        }
        assert!(matches!(
            s.challenged(&v(&["read"]), &v(&["read"])),
            Challenged::GivenUp { .. }
        ));
    }

    #[test]
    fn reads_the_challenge() {
        assert_eq!(
            insufficient_scope(
                r#"Bearer error="insufficient_scope", scope="a b", resource_metadata="x""#
            ),
            Some(v(&["a", "b"]))
        );
        assert_eq!(insufficient_scope(r#"Bearer error="invalid_token""#), None);
        assert_eq!(insufficient_scope("Basic realm=x"), None);
    }
}
