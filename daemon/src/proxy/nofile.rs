//! The open-file limit against `limits.max_connections`: at start the soft limit is raised to
//! the hard one (as systemd's `LimitNOFILE` would set it), and a limit still too small for the
//! configured connections is logged. Past the open-file limit `accept` fails and new clients
//! wait in the backlog unanswered, which `max_connections` exists to prevent (over it they get
//! a 503 at once), so the limit must be the smaller of the two bounds.

/// Files a client connection may hold: its socket and, over HTTP/1.1, its upstream connection.
const FILES_PER_CONNECTION: u64 = 2;
/// Files for everything else: listeners, the admin socket, logs, the token store, DNS.
const RESERVED_FILES: u64 = 256;

/// The open files `max_connections` client connections may need.
pub fn needed(max_connections: usize) -> u64 {
    (max_connections as u64).saturating_mul(FILES_PER_CONNECTION) + RESERVED_FILES
}

/// Raises the soft open-file limit to the hard limit; returns the soft limit now in force.
#[allow(unsafe_code)]
fn raise_to_hard() -> Option<u64> {
    use nix::libc::{getrlimit, rlimit, setrlimit, RLIMIT_NOFILE};
    let mut lim = rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a pointer to a live local of that type.
    if unsafe { getrlimit(RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = rlimit {
            rlim_cur: lim.rlim_max,
            ..lim
        };
        // SAFETY: setrlimit only reads the `rlimit` behind a pointer to a live local.
        if unsafe { setrlimit(RLIMIT_NOFILE, &raised) } == 0 {
            return Some(raised.rlim_cur);
        }
    }
    Some(lim.rlim_cur)
}

/// At start: raise the soft limit, and warn when it cannot hold `max_connections`.
pub fn check(max_connections: usize) {
    let Some(limit) = raise_to_hard() else {
        return;
    };
    let needed = needed(max_connections);
    if limit < needed {
        tracing::warn!(
            open_file_limit = limit,
            max_connections,
            needed,
            "the open-file limit is below what limits.max_connections needs (2 files per \
             connection + {RESERVED_FILES}); past it new clients wait unanswered: raise \
             LimitNOFILE (ulimit -n) or lower limits.max_connections"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_fits_the_units_limit() {
        // systemd/mcpproxyd.service and the user unit set LimitNOFILE=16384.
        assert!(super::needed(crate::config::DEFAULT_MAX_CONNECTIONS) <= 16384);
        assert_eq!(super::needed(100), 456);
    }
}
