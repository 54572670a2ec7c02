#!/usr/bin/env bash
# ostree's own test suite against oxtree: the installed tests of ostree 2022.7 (Debian package
# ostree-tests, /usr/libexec/installed-tests/libostree) run with `ostree` on PATH being
# oxtree (whose `trivial-httpd` runs the tests' HTTP server as ostree's does). Real ostree
# passes all of them; every test listed in passing.txt must pass with oxtree too.
#
#   tests/ostree-suite/run.sh [OXTREE] [TEST...]   (default: target/release/oxtree, passing.txt)
#
# Logs in target/ostree-suite/. Needs root (the admin tests make sysroots).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ox=$(realpath "${1:-$root/target/release/oxtree}")
shift || true
T=/usr/libexec/installed-tests/libostree
HTTPD=/usr/libexec/libostree/ostree-trivial-httpd
if [ ! -d "$T" ] || [ ! -x "$HTTPD" ]; then
  echo "ostree-suite: ostree-tests is not installed (apt-get install ostree-tests)" >&2
  exit 1
fi
out=$root/target/ostree-suite
rm -rf "$out"
mkdir -p "$out/bin"
# The tests run from a copy, beside which stand test-pull-{bare,bareuser,bareuseronly}-verified.sh:
# those three with only pull-test.sh's corruption block left out (it wants `pull --mirror
# --http-trusted` to store a corrupt object as served, which oxtree never does; see
# README.md), so that their other 37 steps are checked too.
cp -a "$T" "$out/suite"
T=$out/suite
sed 's/^if ! skip_one_without_user_xattrs; then$/if false; then # (oxtree: corruption block left out)/' \
  "$T/pull-test.sh" >"$T/pull-test-verified.sh"
if cmp -s "$T/pull-test.sh" "$T/pull-test-verified.sh"; then
  echo "ostree-suite: pull-test.sh's corruption block was not found; update run.sh" >&2
  exit 1
fi
for m in bare bareuser bareuseronly; do
  sed 's|/pull-test\.sh|/pull-test-verified.sh|' "$T/test-pull-$m.sh" >"$T/test-pull-$m-verified.sh"
done
# oxtree run as ostree (argv[0] `ostree`: its help then names the program so, as test-help
# wants). A small script, not a link: some tests copy `$(which ostree)` into a tree they commit.
cat >"$out/bin/ostree" <<WRAP
#!/bin/bash
exec -a ostree $ox "\$@"
WRAP
chmod +x "$out/bin/ostree"
if [ $# -gt 0 ]; then
  tests=("$@")
else
  mapfile -t tests < <(grep -v '^#' "$here/passing.txt" | grep .)
fi
failed=()
for t in "${tests[@]}"; do
  d=$(mktemp -d /var/tmp/oxtree-ostree-suite.XXXXXX)
  (cd "$d" && timeout 300 env PATH="$out/bin:$PATH" bash "$T/$t" >"$out/$t.log" 2>&1 </dev/null)
  rc=$?
  # (a test that failed half-way may leave immutable deployment directories)
  find "$d" -xdev -type d -exec chattr -i {} + 2>/dev/null
  rm -rf "$d"
  oks=$(grep -cE '^ok' "$out/$t.log")
  if [ $rc = 0 ]; then
    echo "PASS $t ($oks steps)"
  else
    echo "FAIL $t (rc=$rc after $oks steps; log: $out/$t.log)"
    tail -n 5 "$out/$t.log" | sed 's/^/    /'
    failed+=("$t")
  fi
done
echo "ostree-suite: $(( ${#tests[@]} - ${#failed[@]} ))/${#tests[@]} of ostree's installed tests pass with oxtree"
[ ${#failed[@]} = 0 ]
