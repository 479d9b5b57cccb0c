//! Opening a URL in the user's browser: `$BROWSER` if set (a program and its arguments,
//! separated by whitespace, run without a shell, the URL appended), else `xdg-open`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{Child, Command, Stdio};

/// The opener when `$BROWSER` is unset or blank.
pub const DEFAULT_OPENER: &str = "xdg-open";

/// The program and its arguments (before the URL) that `$BROWSER` names. Pure.
pub fn command(browser: Option<&OsStr>) -> (OsString, Vec<OsString>) {
    let mut words = browser
        .map(|b| {
            b.as_bytes()
                .split(u8::is_ascii_whitespace)
                .filter(|w| !w.is_empty())
                .map(|w| OsString::from_vec(w.to_vec()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter();
    match words.next() {
        Some(program) => (program, words.collect()),
        None => (OsString::from(DEFAULT_OPENER), Vec::new()),
    }
}

/// The browser could not be started.
#[derive(Debug)]
pub struct OpenError {
    pub program: OsString,
    pub source: io::Error,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot start the browser `{}`: {}",
            self.program.to_string_lossy(),
            self.source
        )
    }
}

/// Starts the browser on `url` and returns at once, without waiting for it. Its stdin and
/// stdout are /dev/null (our stdout stays ours); its stderr is ours, so its complaints are
/// seen. The caller may reap it later with [`Child::try_wait`], or let it be.
pub fn open(browser: Option<&OsStr>, url: &str) -> Result<Child, OpenError> {
    let (program, args) = command(browser);
    Command::new(&program)
        .args(&args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| OpenError { program, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(browser: Option<&str>) -> (String, Vec<String>) {
        let (program, args) = command(browser.map(OsStr::new));
        (
            program.into_string().unwrap(),
            args.into_iter().map(|a| a.into_string().unwrap()).collect(),
        )
    }

    #[test]
    fn unset_or_blank_means_xdg_open() {
        assert_eq!(words(None), ("xdg-open".into(), vec![]));
        assert_eq!(words(Some("")), ("xdg-open".into(), vec![]));
        assert_eq!(words(Some("  \t ")), ("xdg-open".into(), vec![]));
    }

    #[test]
    fn browser_is_split_on_whitespace_without_a_shell() {
        assert_eq!(words(Some("firefox")), ("firefox".into(), vec![]));
        assert_eq!(
            words(Some("  /usr/bin/firefox\t--new-window   -P work ")),
            (
                "/usr/bin/firefox".into(),
                vec!["--new-window".into(), "-P".into(), "work".into()]
            )
        );
        // No shell: quotes and `$` are just characters.
        assert_eq!(
            words(Some("w3m '$HOME'")),
            ("w3m".into(), vec!["'$HOME'".into()])
        );
    }

    #[test]
    fn a_missing_browser_is_an_error_naming_it() {
        let e = open(Some(OsStr::new("/nonexistent/browser --flag")), "https://x").unwrap_err();
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("`/nonexistent/browser`"), "{e}");
    }
}
