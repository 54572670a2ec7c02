#!/usr/bin/env bash
# bench.sh — oxtree against real ostree on the same tree, same arguments, same machine.
#
# Measures wall time and peak RSS (/usr/bin/time -f '%e %M') of:
#   commit v1 into a fresh archive repo, commit v1 into a fresh bare-user repo,
#   re-commit the unchanged tree into the same archive repo (second commit on the ref),
#   checkout -U from bare-user (hardlinks), checkout -U from archive, fsck of the archive repo;
# then prints a markdown table and checks that both tools wrote the same commit checksums.
#
# Env:
#   BENCH_TREE=DIR     tree to commit (default: v1 of the debootstrap rootfs, built on demand)
#   BENCH_ROOTFS=DIR   where make-rootfs.sh builds/caches v1 and v2 (default /var/tmp/oxtree-rootfs)
#   BENCH_WORK=DIR     scratch space for repos and checkouts; wiped first (default /var/tmp/oxtree-bench)
#   MAKE_ROOTFS=PATH   the rootfs script (default: ../shared/scripts/make-rootfs.sh beside the repo)
#   OSTREE=PATH        ostree binary (default: ostree on PATH)
#   OXTREE=PATH        oxtree binary; when unset it is built with `cargo build --release -p oxtree-cli`
#
# Page caches cannot be dropped in a container, so every measurement is warm: the input is read
# once (cat to /dev/null) right before a commit, and checkouts/fsck read repos that were just
# written. Each operation runs once per tool; re-run the script to see the noise.
#
# Exit status: 0 if every command succeeded and the checksums and checkouts agree, 1 otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROOTFS=${BENCH_ROOTFS:-/var/tmp/oxtree-rootfs}
WORK=${BENCH_WORK:-/var/tmp/oxtree-bench}
MAKE_ROOTFS=${MAKE_ROOTFS:-$ROOT/../shared/scripts/make-rootfs.sh}
OSTREE=${OSTREE:-ostree}
TS=2020-01-01T00:00:00Z

die() { echo "bench.sh: $*" >&2; exit 1; }

need_apt() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "$1 missing: apt-get install -y $2"
  echo "installing $2 ..." >&2
  apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1; apt-get install -y "$2" >/dev/null; }
}

# --- prerequisites ---------------------------------------------------------------------
[ -x /usr/bin/time ] || need_apt /usr/bin/time time
command -v "$OSTREE" >/dev/null || need_apt ostree ostree

if [ -z "${OXTREE:-}" ]; then
  echo "building oxtree (cargo build --release -p oxtree-cli) ..." >&2
  (cd "$ROOT" && cargo build --release -p oxtree-cli >&2)
  OXTREE=$ROOT/target/release/oxtree
fi
[ -x "$OXTREE" ] || die "no oxtree binary at $OXTREE"

if [ -n "${BENCH_TREE:-}" ]; then
  TREE=$BENCH_TREE
else
  if [ ! -f "$ROOTFS/v1.done" ]; then
    need_apt debootstrap debootstrap
    [ -x "$MAKE_ROOTFS" ] || die "make-rootfs.sh not found at $MAKE_ROOTFS (set MAKE_ROOTFS)"
    echo "building the debootstrap rootfs in $ROOTFS (several minutes, cached afterwards) ..." >&2
    "$MAKE_ROOTFS" "$ROOTFS" >&2
  fi
  TREE=$ROOTFS/v1
fi
[ -d "$TREE" ] || die "tree $TREE is not a directory"
TREE=$(cd "$TREE" && pwd)

# Deleting a previous run's ~20,000 inodes right before the timed commits would slow every
# inode allocation that follows (ext4 skips recently deleted inodes for a minute:
# `recently_deleted()` showed as the top kernel symbol in perf), so the old work directory is
# moved aside now and deleted only after the measurements.
if [ -e "$WORK" ]; then
  mv "$WORK" "$WORK.old.$$"
  trap 'rm -rf "$WORK.old.$$"' EXIT
fi
mkdir -p "$WORK"

# --- measurement -----------------------------------------------------------------------
declare -A SECS MIB OUT
PROBLEMS=()

warm() { find "$1" -xdev -type f -print0 | xargs -0r cat >/dev/null 2>&1 || true; }

# measure TOOL OP CMD... : runs CMD once under /usr/bin/time, records seconds and MiB,
# keeps stdout in OUT[TOOL,OP]; a failure is recorded and shown, not fatal.
measure() {
  local tool=$1 op=$2; shift 2
  local tf="$WORK/time.$tool.$op" log="$WORK/out.$tool.$op" err="$WORK/err.$tool.$op"
  if /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$log" 2>"$err"; then
    local s k
    read -r s k < <(tail -n1 "$tf")
    SECS[$tool,$op]="${SECS[$tool,$op]:-} $s"
    MIB[$tool,$op]="${MIB[$tool,$op]:-} $(awk -v k="$k" 'BEGIN{printf "%.1f", k/1024}')"
  else
    SECS[$tool,$op]=FAIL
    MIB[$tool,$op]=FAIL
    PROBLEMS+=("$tool $op failed: $*")
    echo "!!! $tool $op FAILED: $*" >&2
    tail -n 20 "$err" >&2
  fi
  OUT[$tool,$op]=$(tail -n1 "$log" 2>/dev/null || true)
  echo "  round $ROUND $tool $op: $(tail -n1 "$tf" 2>/dev/null)" >&2
}

TOOLS=(ostree oxtree)
bin() { if [ "$1" = ostree ]; then echo "$OSTREE"; else echo "$OXTREE"; fi; }


COMMIT_ARGS=(-b main -s bench --timestamp="$TS" --tree=dir="$TREE")
OPS=(commit-archive commit-bare-user recommit-archive checkout-bare-user checkout-archive fsck-archive)
declare -A LABEL=(
  [commit-archive]="commit v1 → fresh archive repo"
  [commit-bare-user]="commit v1 → fresh bare-user repo"
  [recommit-archive]="re-commit unchanged v1 → same archive repo"
  [checkout-bare-user]="checkout -U from bare-user (hardlinks)"
  [checkout-archive]="checkout -U from archive"
  [fsck-archive]="fsck archive repo"
)

echo "tree: $TREE" >&2
# ROUNDS (default 3) full rounds, each in fresh repos; the table shows medians. On a shared
# 2-vCPU VM one run can be off by 30 %, in either direction.
ROUNDS=${ROUNDS:-3}
BASE=$WORK
for ROUND in $(seq 1 "$ROUNDS"); do
WORK=$BASE/round$ROUND
mkdir -p "$WORK"
for t in "${TOOLS[@]}"; do
  "$(bin "$t")" init --repo="$WORK/$t-archive" --mode=archive
  "$(bin "$t")" init --repo="$WORK/$t-bare-user" --mode=bare-user
done
for op in "${OPS[@]}"; do
  for t in "${TOOLS[@]}"; do
    b=$(bin "$t")
    case $op in
      commit-archive|recommit-archive)
        warm "$TREE"
        measure "$t" "$op" "$b" commit --repo="$WORK/$t-archive" "${COMMIT_ARGS[@]}" ;;
      commit-bare-user)
        warm "$TREE"
        measure "$t" "$op" "$b" commit --repo="$WORK/$t-bare-user" "${COMMIT_ARGS[@]}" ;;
      checkout-bare-user)
        measure "$t" "$op" "$b" checkout --repo="$WORK/$t-bare-user" -U main "$WORK/$t-co-bare-user" ;;
      checkout-archive)
        measure "$t" "$op" "$b" checkout --repo="$WORK/$t-archive" -U main "$WORK/$t-co-archive" ;;
      fsck-archive)
        measure "$t" "$op" "$b" fsck --repo="$WORK/$t-archive" ;;
    esac
  done
done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END { if (NR==0) print "FAIL"; else if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2 }'; }
for key in "${!SECS[@]}"; do
  case ${SECS[$key]} in *FAIL*) SECS[$key]=FAIL ;; *) SECS[$key]=$(echo "${SECS[$key]}" | median) ;; esac
  case ${MIB[$key]} in *FAIL*) MIB[$key]=FAIL ;; *) MIB[$key]=$(echo "${MIB[$key]}" | tr ' ' '\n' | sort -g | tail -n1) ;; esac
done

# --- correctness cross-checks ------------------------------------------------------------
CHECKS=()
for op in commit-archive recommit-archive commit-bare-user; do
  a=${OUT[ostree,$op]:-} b=${OUT[oxtree,$op]:-}
  if [ -n "$a" ] && [ "$a" = "$b" ]; then
    CHECKS+=("$op: same commit checksum $a")
  else
    CHECKS+=("!!! BUG: $op commit checksum MISMATCH: ostree=${a:-none} oxtree=${b:-none}")
    PROBLEMS+=("$op checksum mismatch")
  fi
done
for kind in bare-user archive; do
  if [ -d "$WORK/ostree-co-$kind" ] && [ -d "$WORK/oxtree-co-$kind" ]; then
    if diff -r --no-dereference -q "$WORK/ostree-co-$kind" "$WORK/oxtree-co-$kind" >"$WORK/diff.$kind" 2>&1; then
      CHECKS+=("checkout from $kind: identical trees")
    else
      CHECKS+=("!!! BUG: checkout from $kind differs between ostree and oxtree ($(wc -l <"$WORK/diff.$kind") lines in $WORK/diff.$kind)")
      PROBLEMS+=("checkout-$kind trees differ")
    fi
  fi
done

# --- report ------------------------------------------------------------------------------
n_files=$(find "$TREE" -xdev -type f | wc -l)
size=$(du -sh --apparent-size "$TREE" | cut -f1)
echo
echo "Tree: \`$TREE\` ($n_files files, $size apparent); median of $ROUNDS rounds; $(date -u +%Y-%m-%d), $(nproc) cores,"\
     "$("$OSTREE" --version | awk -F"'" '/Version/{print "ostree " $2; exit}'),"\
     "oxtree $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "| operation | ostree s | oxtree s | ratio (ostree/oxtree) | ostree peak MiB | oxtree peak MiB |"
echo "|---|---:|---:|---:|---:|---:|"
for op in "${OPS[@]}"; do
  so=${SECS[ostree,$op]} sx=${SECS[oxtree,$op]}
  ratio=$(awk -v a="$so" -v b="$sx" 'BEGIN{ if (a+0==a && b+0==b && b>0) printf "%.2f", a/b; else if (a+0==a && b+0==b) print "∞"; else print "n/a" }')
  echo "| ${LABEL[$op]} | $so | $sx | $ratio | ${MIB[ostree,$op]} | ${MIB[oxtree,$op]} |"
done
echo
for c in "${CHECKS[@]}"; do echo "- $c"; done
if [ ${#PROBLEMS[@]} -gt 0 ]; then
  echo
  echo "PROBLEMS (${#PROBLEMS[@]}): logs in $WORK/err.*"
  for p in "${PROBLEMS[@]}"; do echo "  - $p"; done
  exit 1
fi
