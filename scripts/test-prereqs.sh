#!/usr/bin/env bash
# Everything the test suite needs beyond Rust, in one place (`make test`, `make test-deps` and
# .ci/run all call this). For each prerequisite a fresh machine lacks:
#   - apt packages: installed when running as root with apt-get; otherwise the exact
#     `apt-get install` line is printed and the script exits 1;
#   - cargo-deb (pinned): `cargo install`ed, as any user;
#   - the Python venv target/python-venv (tests/python/requirements.txt): built.
# With --check nothing is installed: what is missing is listed, and the exit status is 1.
set -euo pipefail
cd "$(dirname "$0")/.."

check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 64 ;;
esac

problems=()
say() { printf '%s\n' "$*"; }

# --- the platform and the toolchain --------------------------------------------------------
if [ "$(uname -s)" != Linux ]; then
  say "test-prereqs: the tests need Linux (kernel keyring, /proc, Unix peer credentials); this is $(uname -s)" >&2
  exit 1
fi
need_rust=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
have_rust=$(rustc --version 2>/dev/null | awk '{print $2}')
if [ -z "$have_rust" ]; then
  problems+=("rustc is missing: install Rust $need_rust or newer with rustup (https://rustup.rs)")
elif [ "$(printf '%s\n%s\n' "$need_rust" "${have_rust%%-*}" | sort -V | head -n1)" != "$need_rust" ]; then
  problems+=("rustc $have_rust is older than Cargo.toml's rust-version $need_rust: rustup update")
fi

# --- apt packages, by the command each provides ---------------------------------------------
# command:package:what for
APT_TOOLS=(
  "cc:gcc:C compiler for the vendored D-Bus library (libdbus-sys)"
  "keyctl:keyutils:keyctl cross-check of the kernel keyring store"
  "dbus-daemon:dbus-daemon:a private session bus for the Secret Service store"
  "systemd-socket-activate:systemd:socket activation test; also systemd-analyze, -sysusers, -tmpfiles"
  "systemd-analyze:systemd:unit checks (systemd-analyze security/verify)"
  "systemd-sysusers:systemd:make install's sysusers snippet, checked in a scratch root"
  "dpkg-deb:dpkg:the .deb test lists and installs the package"
  "dpkg-shlibdeps:dpkg-dev:cargo-deb computes the package's Depends with it"
  "deb-systemd-helper:init-system-helpers:the package's maintainer scripts enable the units"
  "make:make:make install DESTDIR= (tests/tests/systemd.rs)"
  "script:bsdutils:script(1) runs the daemon on a pseudo-terminal (foreground login test)"
  "curl:curl:the demo's tool call (scripts/demo.sh)"
  "nginx:nginx-light:the nginx column of mcpproxy-bench --quick (a user process, never a service)"
  "wrk:wrk:the JSON-RPC load of mcpproxy-bench --quick"
)
missing_pkgs=()
for entry in "${APT_TOOLS[@]}"; do
  IFS=: read -r tool pkg why <<<"$entry"
  if ! command -v "$tool" >/dev/null 2>&1; then
    say "missing: $tool (apt package $pkg): $why"
    [[ " ${missing_pkgs[*]} " == *" $pkg "* ]] || missing_pkgs+=("$pkg")
  fi
done
# python3 with its venv module (Debian splits it into python3-venv).
if ! command -v python3 >/dev/null 2>&1; then
  say "missing: python3 (apt package python3): the Python MCP SDK client test"
  missing_pkgs+=(python3 python3-venv)
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  say "missing: python3's venv module (apt package python3-venv)"
  missing_pkgs+=(python3-venv)
fi

if [ "${#missing_pkgs[@]}" -gt 0 ]; then
  install_line="apt-get install -y ${missing_pkgs[*]}"
  if ! $check_only && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "== $install_line"
    export DEBIAN_FRONTEND=noninteractive
    export RUNLEVEL=1  # packages' scripts start no service (nginx stays the bench's own process)
    apt-get update -qq
    apt-get install -y -qq "${missing_pkgs[@]}"
  else
    problems+=("system packages missing; install them with: sudo $install_line")
  fi
fi

# --- cargo-deb --------------------------------------------------------------------------
# Builds the Debian package in tests/tests/systemd.rs. Pinned; compiling it takes about
# 2 minutes on 2 cores.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
  if $check_only; then
    problems+=("cargo-deb $CARGO_DEB_VERSION missing: cargo install cargo-deb --locked --version $CARGO_DEB_VERSION")
  else
    say "== cargo install cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
  fi
fi

# --- the Python venv ----------------------------------------------------------------------
# For tests/tests/python_client.rs (the official Python MCP SDK as a client), pinned by
# tests/python/requirements.txt. Rebuilt only when the requirements or python3 change (a
# stamp in the venv records both); about 20 s from PyPI.
PY_VENV=target/python-venv
if command -v python3 >/dev/null 2>&1; then
  py_stamp="$(sha256sum tests/python/requirements.txt | cut -d' ' -f1) $(python3 --version 2>&1)"
  if [ "$(cat "$PY_VENV/.requirements-stamp" 2>/dev/null)" != "$py_stamp" ]; then
    if $check_only; then
      problems+=("$PY_VENV is missing or stale: make test-deps (or scripts/test-prereqs.sh) builds it")
    else
      say "== python venv $PY_VENV (tests/python/requirements.txt)"
      rm -rf "$PY_VENV"
      python3 -m venv "$PY_VENV"
      "$PY_VENV/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt
      printf '%s\n' "$py_stamp" >"$PY_VENV/.requirements-stamp"
    fi
  fi
fi

if [ "${#problems[@]}" -gt 0 ]; then
  say "test-prereqs: not ready to run the whole test suite:" >&2
  for p in "${problems[@]}"; do say "  - $p" >&2; done
  exit 1
fi
say "test-prereqs: all test prerequisites are present"
