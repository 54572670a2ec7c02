#!/usr/bin/env bash
# The one test command (README, .ci/run): installs the oracle (real ostree) and tools the
# tests drive, then runs every test. Needs root (bare-mode tests chown files).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v ostree >/dev/null || need+=(ostree)
command -v setfattr >/dev/null || need+=(attr)
command -v setpriv >/dev/null || need+=(util-linux)
[ -x /usr/sbin/nginx ] || need+=(nginx)
command -v gpg >/dev/null || need+=(gnupg)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The tests start their own nginx on free ports; the distribution's service is not needed.
if command -v systemctl >/dev/null; then systemctl stop nginx 2>/dev/null || true; fi
ostree --version | head -2
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
