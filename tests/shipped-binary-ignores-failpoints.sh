#!/usr/bin/env bash
# tests/shipped-binary-ignores-failpoints.sh — the shipped binary has no fault-injection
# hooks (issue 14, durability C5): built without the `failpoints` feature, an `admin
# deploy` with FAILPOINTS and the old OXTREE_FAIL_AFTER/OXTREE_HANG_AFTER variables set,
# naming every deploy step, succeeds as if they were not there. A stray variable must never
# hang or fail a finalize at shutdown.
#
# Control: with CONTROL=BINARY (a build with the feature; scripts/test.sh passes the test
# build), the same deploy must fail, so this check can tell the two builds apart.
#
#   tests/shipped-binary-ignores-failpoints.sh [BINARY]   (default target/release/oxtree)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OX=${1:-$ROOT/target/release/oxtree}
CONTROL=${CONTROL:-}
[ -x "$OX" ] || { echo "no binary at $OX (cargo build --release -p oxtree-cli)" >&2; exit 1; }
T=$(mktemp -d /var/tmp/oxtree-shipped-XXXXXX)
trap 'chattr -R -i "$T" 2>/dev/null || true; rm -rf "$T"' EXIT

tree=$T/tree
mkdir -p "$tree/usr/lib/modules/6.1.0" "$tree/usr/etc" "$tree/boot" "$tree/sysroot"
head -c 4096 /dev/zero >"$tree/usr/lib/modules/6.1.0/vmlinuz"
printf 'ID=testos\nPRETTY_NAME="TestOS"\n' >"$tree/usr/lib/os-release"
echo "setting=1" >"$tree/usr/etc/test.conf"

steps="checkout etc kernel entries bootlinks refs swap swapped cleanup"
fp=
for s in $steps; do fp="${fp}deploy::$s=return(hang);"; done

# deploy BINARY SYSROOT: init a sysroot and deploy into it with every hook set.
deploy() {
  local ox=$1 sr=$2
  mkdir -p "$sr"
  "$ox" admin init-fs "$sr" >/dev/null
  "$ox" admin os-init --sysroot="$sr" testos >/dev/null
  "$ox" commit --repo="$sr/ostree/repo" -b testos/main -s v1 --tree=dir="$tree" >/dev/null
  FAILPOINTS=$fp OXTREE_FAIL_AFTER=entries OXTREE_HANG_AFTER=checkout \
    timeout 120 "$ox" admin deploy --sysroot="$sr" --os=testos testos/main
}

fails=0
if deploy "$OX" "$T/shipped" >"$T/out" 2>&1 &&
  [ "$("$OX" admin status --sysroot="$T/shipped" | grep -c "origin refspec: testos/main")" = 1 ]; then
  echo "PASS the shipped binary ignores FAILPOINTS, OXTREE_FAIL_AFTER and OXTREE_HANG_AFTER"
else
  echo "FAIL the shipped binary honoured a fault-injection variable:"; cat "$T/out"
  fails=1
fi
if [ -n "$CONTROL" ]; then
  # return(hang) would wait forever: make the control fail fast instead.
  fp=${fp//return(hang)/return}
  if deploy "$CONTROL" "$T/control" >"$T/out" 2>&1; then
    echo "FAIL control: $CONTROL (built with failpoints) ignored FAILPOINTS too:"; cat "$T/out"
    fails=1
  elif grep -q "injected failure at failpoint deploy::" "$T/out"; then
    echo "PASS control: a build with the failpoints feature stops at the failpoint"
  else
    echo "FAIL control: $CONTROL failed for another reason:"; cat "$T/out"
    fails=1
  fi
fi
exit "$fails"
