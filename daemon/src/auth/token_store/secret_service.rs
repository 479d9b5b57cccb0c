//! Is there a Secret Service on the session bus? Answered within a bounded time.
//!
//! A system service has no session bus, and a session bus may have no Secret Service, or one
//! that never answers (a locked desktop keyring waiting for a person). The daemon must neither
//! hang at start-up nor spawn `dbus-launch` (libdbus's autolaunch), so the address is taken
//! only from `$DBUS_SESSION_BUS_ADDRESS` or an existing `$XDG_RUNTIME_DIR/bus` socket of ours,
//! and the probe runs on its own thread with a deadline.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use dbus::blocking::stdintf::org_freedesktop_dbus::Properties;

/// How long the probe waits for the Secret Service to answer.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

const SECRETS_NAME: &str = "org.freedesktop.secrets";
const SECRETS_PATH: &str = "/org/freedesktop/secrets";
const SECRETS_INTERFACE: &str = "org.freedesktop.Secret.Service";

/// The session bus address libdbus would use, short of autolaunch.
pub(crate) fn session_bus_address() -> Option<String> {
    if let Some(addr) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
    {
        return Some(addr);
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    let bus = Path::new(&runtime).join("bus");
    // libdbus takes this socket only when it is ours; so do we.
    let meta = std::fs::metadata(&bus).ok()?;
    let ours = meta.uid() == nix::unistd::geteuid().as_raw();
    (ours && meta.file_type().is_socket()).then(|| format!("unix:path={}", bus.display()))
}

/// `Ok` if a Secret Service on the bus at `address` answers within `timeout`; else why not.
pub(crate) fn probe(address: Option<&str>, timeout: Duration) -> Result<(), String> {
    let address = address
        .ok_or("no session bus (DBUS_SESSION_BUS_ADDRESS is not set and there is no $XDG_RUNTIME_DIR/bus)")?
        .to_string();
    let (tx, rx) = mpsc::channel();
    // If the deadline passes, the thread is left to finish on its own: every D-Bus call in it
    // has the same timeout, so it ends soon after.
    std::thread::Builder::new()
        .name("secret-service-probe".into())
        .spawn(move || {
            let _ = tx.send(probe_blocking(&address, timeout));
        })
        .map_err(|e| format!("cannot start the probe: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the Secret Service did not answer within {}s",
            timeout.as_secs_f32()
        )),
    }
}

fn probe_blocking(address: &str, timeout: Duration) -> Result<(), String> {
    let mut channel = dbus::channel::Channel::open_private(address)
        .map_err(|e| format!("cannot connect to the session bus: {}", describe(&e)))?;
    channel
        .register()
        .map_err(|e| format!("cannot register on the session bus: {}", describe(&e)))?;
    let conn = dbus::blocking::Connection::from(channel);
    // Reading a property of the service interface proves it is a Secret Service, and starts it
    // if the bus can activate it.
    let proxy = conn.with_proxy(SECRETS_NAME, SECRETS_PATH, timeout);
    proxy
        .get::<Vec<dbus::Path<'static>>>(SECRETS_INTERFACE, "Collections")
        .map(drop)
        .map_err(|e| format!("the session bus has no Secret Service: {}", describe(&e)))
}

fn describe(e: &dbus::Error) -> String {
    match (e.name(), e.message()) {
        (Some(name), Some(message)) => format!("{message} ({name})"),
        (Some(name), None) => name.to_string(),
        (None, Some(message)) => message.to_string(),
        (None, None) => "unknown D-Bus error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use super::*;

    const QUICK: Duration = Duration::from_millis(1500);

    #[test]
    fn no_bus_is_unavailable_at_once() {
        let start = Instant::now();
        let err = probe(None, QUICK).unwrap_err();
        assert!(err.contains("no session bus"), "{err}");
        let err = probe(Some("unix:path=/nonexistent/mcpproxyd/bus"), QUICK).unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
        assert!(start.elapsed() < QUICK, "{:?}", start.elapsed());
    }

    /// A private dbus-daemon with no activatable services, ended when dropped.
    struct Bus {
        child: Child,
        address: String,
        _dir: tempfile::TempDir,
    }

    impl Drop for Bus {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// `None` (with the reason printed) when dbus-daemon is missing and
    /// MCPPROXY_TESTS_SKIP_MISSING=1 asks for a skip; otherwise a missing tool fails the test.
    fn start_bus() -> Option<Bus> {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bus.conf");
        let socket = dir.path().join("bus");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>"#,
                socket.display()
            ),
        )
        .unwrap();
        let spawned = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            // Missing tools fail the test unless a skip is asked for (the tests crate's rule).
            Err(e)
                if std::env::var("CI").as_deref() == Ok("true")
                    || std::env::var("MCPPROXY_TESTS_SKIP_MISSING").as_deref() != Ok("1") =>
            {
                panic!("dbus-daemon is missing: {e}; install it with `apt-get install dbus-daemon` (or `make test-deps`)")
            }
            Err(e) => {
                eprintln!("skipping: cannot run dbus-daemon ({e}); install dbus-daemon");
                return None;
            }
        };
        // The daemon prints its address once it listens: that is the readiness signal.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_string();
        if address.is_empty() {
            let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
            panic!("dbus-daemon printed no address: {stderr}");
        }
        Some(Bus {
            child,
            address,
            _dir: dir,
        })
    }

    #[test]
    fn a_bus_without_a_secret_service_is_unavailable_quickly() {
        let Some(bus) = start_bus() else { return };
        let start = Instant::now();
        let err = probe(Some(&bus.address), QUICK).unwrap_err();
        assert!(err.contains("no Secret Service"), "{err}");
        assert!(start.elapsed() < QUICK, "{:?}", start.elapsed());
    }

    #[test]
    fn a_secret_service_that_never_answers_is_given_up_on_in_bounded_time() {
        let Some(bus) = start_bus() else { return };
        // Owns the Secret Service name but never reads its messages.
        let mut channel = dbus::channel::Channel::open_private(&bus.address).unwrap();
        channel.register().unwrap();
        let squatter = dbus::blocking::Connection::from(channel);
        squatter
            .request_name(SECRETS_NAME, false, true, true)
            .unwrap();
        let timeout = Duration::from_millis(500);
        let start = Instant::now();
        let err = probe(Some(&bus.address), timeout).unwrap_err();
        let elapsed = start.elapsed();
        assert!(
            err.contains("did not answer") || err.contains("no Secret Service"),
            "{err}"
        );
        assert!(
            elapsed >= timeout / 2 && elapsed < timeout * 4,
            "{elapsed:?}"
        );
        drop(squatter);
    }
}
