#!/usr/bin/env bash
# The README's test command: installs what the whole test suite needs (the real clients the
# tests drive, plus PostgreSQL and nats-server, whose servers the tests start themselves through
# crates/honeyport-testkit, in temporary directories, on 127.0.0.1 only), then runs
# `cargo test --workspace --locked` with any arguments given here.
#
#   ./test.sh                      # everything
#   ./test.sh -p honeyport-event   # extra arguments go to cargo test
#
# Installing needs root on Debian 12 (as CI runs it); when everything is already there it only
# checks (dpkg -s, a Python import) and installs nothing. It starts no system service: the
# PostgreSQL and NATS packages are installed with a policy-rc.d that forbids starting services
# (the postgresql package still creates its default cluster "15/main" under /var/lib/postgresql,
# which nothing here starts or uses).
set -euo pipefail
cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive

# libnet-ssleay-perl: swaks' STARTTLS (only recommended by the package, and recommends are off).
# postgresql, nats-server: the servers the testkit starts (Debian 12: PostgreSQL 15, NATS 2.9).
need=(openssl curl sqlite3 python3 procps iproute2 telnet busybox nmap swaks libnet-ssleay-perl
  hydra openssh-client sshpass postgresql nats-server)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  # No service may start while installing (exit 101 = "action forbidden" for invoke-rc.d);
  # the policy file is ours only if there was none before, and only for this install.
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [ ! -e "$policy" ]; then
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    own_policy=1
  fi
  local rc=0
  apt-get install -y -qq --no-install-recommends "$@" || rc=$?
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  return "$rc"
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  apt_install "${missing[@]}"
fi

# SSH clients from PyPI (Debian's paramiko predates ServiceRequestingTransport; no asyncssh).
if ! python3 -c 'import paramiko, asyncssh' 2>/dev/null; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  python3 -m pip install -q --break-system-packages 'paramiko>=3.2' asyncssh \
    || python3 -m pip install -q 'paramiko>=3.2' asyncssh
fi

cargo test --workspace --locked "$@"
