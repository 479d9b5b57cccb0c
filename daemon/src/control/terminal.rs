//! What `SIGHUP` means: "reload" for a service, "your terminal is gone" for a foreground run.
//!
//! A daemon started in the foreground on a terminal gets `SIGHUP` when that terminal closes
//! (the window, the ssh session, or `script` being killed). Taking that as "reload" would
//! leave it running with no terminal and no one who knows about it, so such a run exits.
//! Under systemd (`INVOCATION_ID`, `NOTIFY_SOCKET`) or without a terminal, `SIGHUP` is the
//! operator asking for a reload, as documented.

use std::io::IsTerminal;

/// Whether this run was started on a terminal outside a service manager, decided at start.
#[derive(Debug, Clone, Copy)]
pub struct Foreground {
    on_terminal: bool,
}

impl Foreground {
    /// Looks at stdin, stderr and the environment now (call before anything changes them).
    pub fn at_start() -> Foreground {
        let under_systemd = ["INVOCATION_ID", "NOTIFY_SOCKET"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        Foreground {
            on_terminal: !under_systemd && on_a_terminal(),
        }
    }

    /// Whether a `SIGHUP` that just arrived means the terminal went away: this run began on
    /// one and neither stdin nor stderr is a terminal any more (a hung-up terminal answers
    /// no terminal requests, so `isatty` is false). A `kill -HUP` while the terminal is still
    /// open stays a reload.
    pub fn terminal_lost(&self) -> bool {
        self.on_terminal && !on_a_terminal()
    }
}

fn on_a_terminal() -> bool {
    std::io::stdin().is_terminal() || std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_a_terminal_never_loses_one() {
        let run = Foreground { on_terminal: false };
        assert!(!run.terminal_lost());
    }
}
