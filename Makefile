# mcpproxyd: build and install.
#
#   make                        cargo build (CARGO_PROFILE, default release) of both binaries
#   sudo make install           install the binaries already built in TARGET_DIR (built first
#                               only if missing), units, sysusers/tmpfiles snippets, config, docs
#   make install DESTDIR=/tmp/root PREFIX=/usr     staged install, e.g. for packaging
#   make deb                    Debian package with cargo-deb (target/debian/*.deb)
#   make demo                   the no-account demo: test MCP server + daemon, one tool call
#                               (scripts/demo.sh; Ctrl-C stops both)
#   make test-deps              install the test prerequisites (scripts/test-prereqs.sh)
#   make test                   test-deps, then the whole suite (what .ci/run runs)
#   sudo make uninstall         remove what install put under PREFIX (keeps /etc/mcpproxyd)
#
# After a real (DESTDIR-less) install, as root:
#   systemd-sysusers mcpproxyd.conf && systemd-tmpfiles --create mcpproxyd.conf
#   systemctl daemon-reload && systemctl enable --now mcpproxyd

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
DOCDIR ?= $(PREFIX)/share/doc/mcpproxyd

CARGO ?= cargo
CARGO_PROFILE ?= release
# Cargo puts the `dev` profile in `debug`, every other profile in a directory of its name.
PROFILE_DIR = $(if $(filter dev,$(CARGO_PROFILE)),debug,$(CARGO_PROFILE))
CARGO_TARGET_DIR ?= target
TARGET_DIR ?= $(CARGO_TARGET_DIR)/$(PROFILE_DIR)

INSTALL ?= install
BINARIES = mcpproxyd mcpproxyctl
SYSTEM_UNITS = mcpproxyd.service mcpproxyd.socket mcpproxyd-admin.socket mcpproxyd-unix.socket
DROPINS = credential.conf keyring.conf
CONFIG = $(SYSCONFDIR)/mcpproxyd/mcpproxyd.toml

# Units name the installed paths (/usr/bin/mcpproxyd, /usr/share/doc/mcpproxyd).
SUBST = sed -e 's|/usr/bin/mcpproxyd|$(BINDIR)/mcpproxyd|g' \
            -e 's|/usr/share/doc/mcpproxyd|$(DOCDIR)|g' \
            -e 's|/etc/mcpproxyd/|$(SYSCONFDIR)/mcpproxyd/|g'

.PHONY: all build install uninstall deb check-units demo test test-deps

all: build

build:
	$(CARGO) build --profile $(CARGO_PROFILE) -p mcpproxyd -p mcpproxyctl --bins

# Binaries that already exist are installed as they are: `make install` never rebuilds them
# (so `sudo make install` after `make` runs no cargo as root). Missing ones are built.
$(addprefix $(TARGET_DIR)/,$(BINARIES)):
	@echo "$@ is missing: building it (CARGO_PROFILE=$(CARGO_PROFILE))"
	$(CARGO) build --profile $(CARGO_PROFILE) -p mcpproxyd -p mcpproxyctl --bins
	@test -x $@ || { echo "$@ still missing: set TARGET_DIR to the directory holding the built binaries" >&2; exit 1; }

install: $(addprefix $(TARGET_DIR)/,$(BINARIES))
	$(INSTALL) -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)/examples \
		$(DESTDIR)$(SYSCONFDIR)/mcpproxyd
	for b in $(BINARIES); do $(INSTALL) -m 0755 $(TARGET_DIR)/$$b $(DESTDIR)$(BINDIR)/$$b || exit 1; done
	for u in $(SYSTEM_UNITS); do \
		$(SUBST) systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	$(SUBST) systemd/user/mcpproxyd.service > $(DESTDIR)$(USERUNITDIR)/mcpproxyd.service
	chmod 0644 $(DESTDIR)$(USERUNITDIR)/mcpproxyd.service
	$(INSTALL) -m 0644 systemd/sysusers.d/mcpproxyd.conf $(DESTDIR)$(SYSUSERSDIR)/mcpproxyd.conf
	$(INSTALL) -m 0644 systemd/tmpfiles.d/mcpproxyd.conf $(DESTDIR)$(TMPFILESDIR)/mcpproxyd.conf
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	$(INSTALL) -m 0644 config/mcpproxyd.toml $(DESTDIR)$(DOCDIR)/examples/mcpproxyd.toml
	for d in $(DROPINS); do $(INSTALL) -m 0644 systemd/dropins/$$d $(DESTDIR)$(DOCDIR)/examples/$$d || exit 1; done
	@# The config is the operator's: installed once, never overwritten.
	@if [ -e $(DESTDIR)$(CONFIG) ]; then \
		echo "keeping $(DESTDIR)$(CONFIG); the new example is $(DESTDIR)$(DOCDIR)/examples/mcpproxyd.toml"; \
	else \
		echo "$(INSTALL) -m 0644 config/mcpproxyd.toml $(DESTDIR)$(CONFIG)"; \
		$(INSTALL) -m 0644 config/mcpproxyd.toml $(DESTDIR)$(CONFIG); \
	fi
	@if [ -z "$(DESTDIR)" ]; then \
		echo; \
		echo "Next, as root:"; \
		echo "  systemd-sysusers mcpproxyd.conf && systemd-tmpfiles --create mcpproxyd.conf"; \
		echo "  systemctl daemon-reload && systemctl enable --now mcpproxyd"; \
	fi

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(BINARIES))
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(SYSTEM_UNITS))
	rm -f $(DESTDIR)$(USERUNITDIR)/mcpproxyd.service
	rm -f $(DESTDIR)$(SYSUSERSDIR)/mcpproxyd.conf $(DESTDIR)$(TMPFILESDIR)/mcpproxyd.conf
	rm -rf $(DESTDIR)$(DOCDIR)
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/mcpproxyd and /var/lib/mcpproxyd (tokens): remove them by hand"

# The package takes both binaries from target/<profile> (cargo-deb maps target/release/ in
# its asset paths to the profile's directory); build them first, since cargo-deb by itself
# builds only the mcpproxyd package's binary.
deb: build
	$(CARGO) deb -p mcpproxyd --no-build --profile $(CARGO_PROFILE)

# What the test suite checks about the units (needs systemd-analyze, no running systemd).
check-units:
	systemd-analyze security --offline=yes --threshold=15 systemd/mcpproxyd.service

# The no-account demo (see README "Quick start"); builds what it needs first.
demo:
	scripts/demo.sh

# Test prerequisites: installs what is missing, or names it (and how to install it) and fails.
test-deps:
	scripts/test-prereqs.sh

# The README's test command: every test, with everything it needs. A test whose tool is
# missing fails, naming it (see README "Tests").
test: test-deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
