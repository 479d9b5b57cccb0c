//! Tests that need something from outside Rust (a system tool, the Python venv, root): such a
//! test fails when that is missing, naming it and the command that installs it, so a test
//! never reports `ok` without having checked its behaviour. `make test-deps`
//! (scripts/test-prereqs.sh) installs everything. A developer without them may set
//! `MCPPROXY_TESTS_SKIP_MISSING=1` to have those tests skip instead (with the reason on
//! stderr); under `CI=true` that variable is ignored.

/// The variable that turns "missing, so fail" into "missing, so skip" outside CI.
pub const SKIP_VAR: &str = "MCPPROXY_TESTS_SKIP_MISSING";

/// Whether a test may skip for a missing prerequisite: only when asked, never under CI.
pub fn skip_allowed() -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    !ci && std::env::var(SKIP_VAR).as_deref() == Ok("1")
}

/// `what` (a tool, a file, a privilege) is missing and `install` says how to get it: panics
/// with both, or, where skips are allowed, prints them and returns (the caller then returns).
pub fn missing(what: &str, install: &str) {
    let why = format!("{what} is missing: {install} (or run `make test-deps`)");
    assert!(
        skip_allowed(),
        "{why}. To skip the tests that need it instead, set {SKIP_VAR}=1 (not under CI=true)"
    );
    eprintln!("skipping ({SKIP_VAR}=1): {why}");
}

/// Whether `program args` runs and succeeds; if not, [`missing`] with `install`.
pub fn have(program: &str, args: &[&str], install: &str) -> bool {
    let runs = std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        missing(&format!("`{program} {}`", args.join(" ")), install);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_fails_naming_it_and_how_to_install_it() {
        if skip_allowed() {
            // The developer asked for skips: `have` must then report the tool as absent.
            assert!(!have(
                "mcpproxy-no-such-tool",
                &[],
                "apt-get install nothing"
            ));
            return;
        }
        let panic = std::panic::catch_unwind(|| {
            have("mcpproxy-no-such-tool", &["--version"], "apt-get install x")
        })
        .expect_err("a missing tool must fail the test");
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("`mcpproxy-no-such-tool --version`"),
            "{message}"
        );
        assert!(message.contains("apt-get install x"), "{message}");
        assert!(message.contains(SKIP_VAR), "{message}");
    }
}
