#!/usr/bin/env bash
# The one test command (README, .ci/run): installs the oracle (real ostree) and tools the
# tests drive, then runs every test. Needs root (bare-mode tests chown files).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v ostree >/dev/null || need+=(ostree)
command -v setfattr >/dev/null || need+=(attr)
# The pull latency test runs bench/delay-proxy.py.
command -v python3 >/dev/null || need+=(python3)
command -v setpriv >/dev/null || need+=(util-linux)
[ -x /usr/sbin/nginx ] || need+=(nginx)
# The QEMU boot test (tests/e2e): skipped with OXTREE_E2E=0.
if [ "${OXTREE_E2E:-1}" != 0 ]; then
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ -x /usr/sbin/debugfs ] || need+=(e2fsprogs)
  # The real-firmware boot (tests/e2e/ovmf-boot.sh): UEFI firmware for QEMU.
  [ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || need+=(ovmf)
fi
# `oxtree image build` is checked with the partition, FAT and qcow2 tools.
command -v sfdisk >/dev/null || need+=(fdisk)
command -v fsck.fat >/dev/null || need+=(dosfstools)
command -v mtype >/dev/null || need+=(mtools)
command -v qemu-img >/dev/null || need+=(qemu-utils)
[ -x /usr/sbin/debugfs ] || need+=(e2fsprogs)
command -v gpg >/dev/null || need+=(gnupg)
# ostree's own installed tests, run against oxtree (tests/ostree-suite).
[ -d /usr/libexec/installed-tests/libostree ] || need+=(ostree-tests)
# (its test-admin-locking runs admin commands concurrently with GNU parallel)
command -v parallel >/dev/null || need+=(parallel)
# cpio archives are committed by the interop tests and ostree's test-libarchive.
command -v cpio >/dev/null || need+=(cpio)
command -v openssl >/dev/null || need+=(openssl)
# The update agent's FleetLock tests run a real etcd (v3 JSON gateway).
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian's qemu-system-x86 can replace a newer qemu-utils (from backports) by removing it:
# put qemu-img back, at the version that goes with it.
if ! command -v qemu-img >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-utils >/dev/null
fi
# The tests start their own nginx on free ports; the distribution's service is not needed.
if command -v systemctl >/dev/null; then systemctl stop nginx 2>/dev/null || true; fi
# (sed reads to the end: with head, ostree could die of SIGPIPE, and pipefail end the run.)
ostree --version | sed -n '1,2p'
rc=0
# The tests inject failures at crash-relevant steps: they need the `failpoints` feature,
# which only test builds have.
features=(--features oxtree-cli/failpoints)
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --no-fail-fast "${features[@]}" || rc=$?
else
  cargo test --workspace --no-fail-fast "${features[@]}" || rc=$?
fi
# The shipped binary: built without features, it ignores FAILPOINTS and the old
# OXTREE_FAIL_AFTER/OXTREE_HANG_AFTER (control: the test build above honours FAILPOINTS).
cargo build --release -p oxtree-cli
CONTROL=target/debug/oxtree tests/shipped-binary-ignores-failpoints.sh || rc=$?
# ostree 2022.7's own test suite with the shipped binary as `ostree`: every test listed in
# tests/ostree-suite/passing.txt must pass (logs in target/ostree-suite).
tests/ostree-suite/run.sh target/release/oxtree || rc=$?
# End to end: a Debian image built and updated by oxtree alone boots in QEMU, upgrades,
# falls back by itself and rolls back (serial logs kept in target/e2e-logs). The guest runs
# a release build with failpoints (kept apart from the shipped binary) so that the test
# can cut the power in the middle of a finalize.
if [ "${OXTREE_E2E:-1}" != 0 ]; then
  cargo build --release -p oxtree-cli --features failpoints --target-dir target/failpoints
  tests/e2e/qemu-boot.sh || rc=$?
  # Real firmware: a disk from `oxtree image build` boots through OVMF and systemd-boot,
  # which counts the tries and falls back by itself (serial logs in target/ovmf-e2e-logs).
  tests/e2e/ovmf-boot.sh || rc=$?
fi
exit "$rc"
