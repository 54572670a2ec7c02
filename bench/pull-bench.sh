#!/usr/bin/env bash
# pull-bench.sh — HTTP pulls, oxtree against real ostree, from the same server on the same machine.
#
# Builds an archive repo with real ostree (v1 committed on `main`, then v2 on top of it), serves it
# with nginx over loopback and measures, for each client tool, wall time and peak RSS
# (/usr/bin/time -f '%e %M') plus the requests and body bytes nginx logged and nginx's own CPU
# time (/proc/PID/stat of its master and workers), of:
#   a pull of v1 from scratch into a fresh bare-user repo, and into a fresh archive repo;
#   the v1→v2 update of that bare-user repo;
#   the scratch pull through bench/delay-proxy.py adding DELAY_MS in each direction;
#   the scratch pull from `oxtree serve` instead of nginx (oxtree serve vs nginx);
#   pulls through static deltas that ostree made (scratch to v1, update v1 → v2);
#   `static-delta generate` v1 → v2 by each tool on a copy of the served repo: time, peak RSS,
#   the delta's bytes (parts + superblock) and its fallback objects' bytes;
#   a kill test, per repo mode: the scratch pull killed (-9) KILLS times at random points of its
#   progress, rerun each time, then run to completion; reported as the body bytes nginx served in
#   total / the bytes of one clean pull.
# It prints a markdown table and checks that every pull left the expected commit on origin:main,
# that real ostree's fsck accepts every repo oxtree pulled, and that both tools fetched the same
# objects.
#
# Env:
#   BENCH_TREE=DIR      v1 tree (default: v1 of the debootstrap rootfs, built on demand)
#   BENCH_TREE_V2=DIR   v2 tree (default: v2 of the rootfs; with BENCH_TREE set: BENCH_TREE plus a
#                       few generated files)
#   BENCH_ROOTFS=DIR    where make-rootfs.sh builds/caches v1 and v2 (default /var/tmp/oxtree-rootfs)
#   BENCH_WORK=DIR      scratch space; a previous one is moved aside (default /var/tmp/oxtree-pull-bench)
#   MAKE_ROOTFS=PATH    the rootfs script (default: ../shared/scripts/make-rootfs.sh beside the repo)
#   OSTREE=PATH         ostree binary (default: ostree on PATH)
#   OXTREE=PATH         oxtree binary; when unset, target/release/oxtree, (re)built with
#                       `cargo build --release -p oxtree-cli` only if missing or older than the sources
#   NGINX=PATH          nginx binary (default /usr/sbin/nginx; installed if missing)
#   ROUNDS=N            rounds, each in fresh client repos; the table shows medians (default 1)
#   DELAY_MS=N          latency the proxy adds in each direction (default 20)
#   DELAY2_MS=N         the same for the second latency row, scratch-delay2 (default 50)
#   KILLS=N             kills in the kill test (default 5); KILL_SEED=N seeds the kill points (default 1)
#   KILL_MODES="..."    repo modes of the kill test (default "bare-user archive"; "" skips it)
#   PULL_OPS="..."      a subset of the rows, for quick tries (default: all of
#                       scratch-bare-user scratch-archive update scratch-delay scratch-delay2
#                       scratch-serve delta-scratch delta-update delta-generate)
#   PULL_TIMEOUT=S      a pull still running after S seconds is killed and counted as failed (default 600)
#   LIMITS=PATH         the limits probe (crates/oxtree/examples/limits.rs) for the floors of the
#                       scratch and update rows (and xz's for delta-generate); built with cargo when
#                       unset; LIMITS=0 skips them
#
# Page caches cannot be dropped in a container: the served repo was just written and stays
# warm, and every client writes into a fresh repo. fsync is at each tool's default (on).
#
# Exit status: 0 if every command succeeded and every check passed, 1 otherwise. Targets from
# the issue that are not met are reported, not fatal.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROOTFS=${BENCH_ROOTFS:-/var/tmp/oxtree-rootfs}
WORK=${BENCH_WORK:-/var/tmp/oxtree-pull-bench}
MAKE_ROOTFS=${MAKE_ROOTFS:-$ROOT/../shared/scripts/make-rootfs.sh}
OSTREE=${OSTREE:-ostree}
NGINX=${NGINX:-/usr/sbin/nginx}
ROUNDS=${ROUNDS:-1}
DELAY_MS=${DELAY_MS:-20}
DELAY2_MS=${DELAY2_MS:-50}
KILLS=${KILLS:-5}
KILL_SEED=${KILL_SEED:-1}
PULL_TIMEOUT=${PULL_TIMEOUT:-600}
TS=2020-01-01T00:00:00Z

die() { echo "pull-bench.sh: $*" >&2; exit 1; }

need_apt() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "$1 missing: apt-get install -y $2"
  echo "installing $2 ..." >&2
  apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1; apt-get install -y "$2" >/dev/null; }
}

# --- prerequisites ---------------------------------------------------------------------
[ -x /usr/bin/time ] || need_apt /usr/bin/time time
command -v "$OSTREE" >/dev/null || need_apt ostree ostree
[ -x "$NGINX" ] || need_apt "$NGINX" nginx
command -v python3 >/dev/null || need_apt python3 python3
command -v timeout >/dev/null || die "timeout (coreutils) missing"
command -v xz >/dev/null || need_apt xz xz-utils

if [ -z "${OXTREE:-}" ]; then
  OXTREE=$ROOT/target/release/oxtree
  if [ ! -x "$OXTREE" ] || [ -n "$(cd "$ROOT" && find crates Cargo.toml Cargo.lock -newer "$OXTREE" -print -quit)" ]; then
    echo "building oxtree (cargo build --release -p oxtree-cli) ..." >&2
    (cd "$ROOT" && cargo build --release -p oxtree-cli >&2)
  fi
fi
[ -x "$OXTREE" ] || die "no oxtree binary at $OXTREE"
OX_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)  # before the runs: HEAD may move

if [ -n "${BENCH_TREE:-}" ]; then
  TREE1=$BENCH_TREE
  TREE2=${BENCH_TREE_V2:-}
else
  if [ ! -f "$ROOTFS/v1.done" ] || [ ! -f "$ROOTFS/v2.done" ]; then
    need_apt debootstrap debootstrap
    [ -x "$MAKE_ROOTFS" ] || die "make-rootfs.sh not found at $MAKE_ROOTFS (set MAKE_ROOTFS)"
    echo "building the debootstrap rootfs in $ROOTFS (several minutes, cached afterwards) ..." >&2
    "$MAKE_ROOTFS" "$ROOTFS" >&2
  fi
  TREE1=$ROOTFS/v1
  TREE2=${BENCH_TREE_V2:-$ROOTFS/v2}
fi
[ -d "$TREE1" ] || die "tree $TREE1 is not a directory"
TREE1=$(cd "$TREE1" && pwd)
[ -z "$TREE2" ] || { [ -d "$TREE2" ] || die "tree $TREE2 is not a directory"; TREE2=$(cd "$TREE2" && pwd); }

# A previous run's work directory holds tens of thousands of inodes; deleting it right before
# the timed pulls would slow their inode allocations (see bench.sh), so it is moved aside now
# and deleted at exit.
OLD=
if [ -e "$WORK" ]; then
  OLD=$WORK.old.$$
  mv "$WORK" "$OLD"
fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# Every server this script starts is stopped by its own pid at exit.
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -z "$OLD" ] || rm -rf "$OLD"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port: wait up to 10 s until something accepts on it
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# --- source repos (real ostree) ------------------------------------------------------------
# srv/v1 holds only v1 on main; srv/full holds v1 and then v2 on main (the same v1 commit: it is
# a copy of srv/v1 taken before v2 was committed).
SRV=$WORK/srv
mkdir -p "$SRV"
if [ -z "$TREE2" ]; then
  # v2 = v1 plus a few new files (layered as a second --tree).
  mkdir -p "$WORK/extra/bench-v2"
  for i in $(seq 1 20); do head -c $((i * 7919)) /dev/urandom >"$WORK/extra/bench-v2/file$i"; done
  V2_TREES=(--tree=dir="$TREE1" --tree=dir="$WORK/extra")
  TREE2_DESC="$TREE1 + $WORK/extra"
else
  V2_TREES=(--tree=dir="$TREE2")
  TREE2_DESC=$TREE2
fi
echo "committing v1 ($TREE1) and v2 ($TREE2_DESC) with $OSTREE into archive repos in $SRV ..." >&2
"$OSTREE" init --repo="$SRV/v1" --mode=archive
C1=$("$OSTREE" commit --repo="$SRV/v1" -b main -s v1 --timestamp="$TS" --tree=dir="$TREE1")
"$OSTREE" summary --repo="$SRV/v1" -u
cp -a "$SRV/v1" "$SRV/full"
C2=$("$OSTREE" commit --repo="$SRV/full" -b main -s v2 --timestamp="$TS" "${V2_TREES[@]}")
"$OSTREE" summary --repo="$SRV/full" -u
# Static deltas, made by ostree so that both tools consume the same ones: srv/v1delta is
# srv/v1 plus a scratch delta to v1; srv/delta is srv/full plus the v1→v2 delta.
cp -a "$SRV/v1" "$SRV/v1delta"
"$OSTREE" static-delta generate --repo="$SRV/v1delta" --empty --to="$C1" >/dev/null
"$OSTREE" summary --repo="$SRV/v1delta" -u
cp -a "$SRV/full" "$SRV/delta"
"$OSTREE" static-delta generate --repo="$SRV/delta" --from="$C1" --to="$C2" >/dev/null
"$OSTREE" summary --repo="$SRV/delta" -u
N1=$(find "$SRV/v1/objects" -type f | wc -l)
N2=$(( $(find "$SRV/full/objects" -type f | wc -l) - N1 ))
B1=$(find "$SRV/v1/objects" -type f -printf '%s\n' | awk '{s+=$1} END{printf "%.1f", s/1e6}')
B2=$(awk -v a="$(find "$SRV/full/objects" -type f -printf '%s\n' | awk '{s+=$1} END{print s}')" \
         -v b="$(find "$SRV/v1/objects" -type f -printf '%s\n' | awk '{s+=$1} END{print s}')" 'BEGIN{printf "%.1f", (a-b)/1e6}')
echo "v1 $C1: $N1 objects, $B1 MB; v2 $C2: $N2 new objects, $B2 MB" >&2

# --- servers -------------------------------------------------------------------------------
NG=$WORK/nginx
mkdir -p "$NG"
NGINX_PORT=$(free_port)
ACCESS=$NG/access.log
cat >"$NG/nginx.conf" <<EOF
daemon off; user root; worker_processes auto; pid $NG/nginx.pid; error_log $NG/error.log;
events { worker_connections 1024; }
http {
  log_format bench '\$status \$body_bytes_sent \$bytes_sent \$request_time "\$request"';
  access_log $ACCESS bench;
  sendfile on; tcp_nopush on; default_type application/octet-stream;
  client_body_temp_path $NG; proxy_temp_path $NG; fastcgi_temp_path $NG; uwsgi_temp_path $NG; scgi_temp_path $NG;
  server { listen 127.0.0.1:$NGINX_PORT; root $SRV; }
}
EOF
"$NGINX" -e "$NG/error.log" -c "$NG/nginx.conf" -p "$NG" &
PIDS+=($!)
NGINX_MASTER=$!
wait_port "$NGINX_PORT" || die "nginx did not start: $(cat "$NG/error.log")"
NGINX_URL=http://127.0.0.1:$NGINX_PORT

# oxtree serve of the same v1 repo, for the serve-vs-nginx row.
"$OXTREE" serve --repo="$SRV/v1" --port=0 --quiet >"$WORK/serve.out" 2>"$WORK/serve.err" &
PIDS+=($!)
SERVE_URL=
for _ in $(seq 100); do
  SERVE_URL=$(cat "$WORK/serve.out" "$WORK/serve.err" 2>/dev/null | grep -o "http://127.0.0.1:[0-9]*" | head -n1 || true)
  [ -n "$SERVE_URL" ] && break
  sleep 0.1
done
[ -n "$SERVE_URL" ] || die "oxtree serve did not start: $(cat "$WORK/serve.err")"

# The delaying proxy runs only during a delayed pull; it exits by itself after PULL_TIMEOUT+60 s.
PROXY_PID='' PROXY_URL=''
proxy_start() { # [DELAY_MS]
  python3 "$HERE/delay-proxy.py" 0 "$NGINX_PORT" "${1:-$DELAY_MS}" $((PULL_TIMEOUT + 60)) >"$WORK/proxy.out" 2>>"$WORK/proxy.err" &
  PROXY_PID=$!
  local port=
  for _ in $(seq 100); do
    port=$(awk '/^listening on/{print $3}' "$WORK/proxy.out" 2>/dev/null || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || die "delay-proxy did not start: $(cat "$WORK/proxy.err")"
  PROXY_URL=http://127.0.0.1:$port
}
proxy_stop() { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=; }

# --- measurement -----------------------------------------------------------------------------
declare -A SECS MIB REQS MB BYTES KILLR KILLPART KILLN KILLNOTE SRVCPU
PROBLEMS=()
CHECKS=()

log_lines() { wc -l <"$ACCESS"; }
# nginx_ticks: CPU time (user + system, clock ticks) of nginx's master and workers so far: the
# server's share of the two cores during a pull.
nginx_ticks() {
  local p t=0
  for p in "$NGINX_MASTER" $(pgrep -P "$NGINX_MASTER" 2>/dev/null); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
# served FROM_LINE: "requests bytes" logged by nginx after line FROM_LINE
served() { sleep 0.2; tail -n +"$(($1 + 1))" "$ACCESS" | awk '{n++; b+=$2} END{printf "%d %d\n", n, b}'; }

TOOLS=(ostree oxtree)
bin() { if [ "$1" = ostree ]; then echo "$OSTREE"; else echo "$OXTREE"; fi; }

new_repo() { # tool repo mode url
  "$(bin "$1")" init --repo="$2" --mode="$3" >/dev/null
  "$(bin "$1")" remote add --repo="$2" --no-gpg-verify origin "$4" >/dev/null
}

# set_pull tool repo: PULL=(the pull command; the same for both tools, plus oxtree's --json)
set_pull() {
  if [ "$1" = ostree ]; then PULL=("$OSTREE" pull --repo="$2" origin main)
  else PULL=("$OXTREE" pull --repo="$2" --json origin main); fi
}

check_ref() { # tool repo expected what
  local got
  got=$("$(bin "$1")" rev-parse --repo="$2" origin:main 2>&1 || true)
  if [ "$got" != "$3" ]; then
    PROBLEMS+=("$4: $1 left origin:main at '$got', expected $3 ($2)")
    echo "!!! $4: $1 origin:main = '$got', expected $3" >&2
    return 1
  fi
}

# measure TOOL OP REPO EXPECTED [log]: one pull under /usr/bin/time; records seconds, MiB and
# (with `log`) the requests and bytes nginx served; a failure is recorded, not fatal.
measure() {
  local tool=$1 op=$2 repo=$3 expected=$4 count=${5:-}
  local tf="$WORK/time.$tool.$op" out="$WORK/out.$tool.$op" err="$WORK/err.$tool.$op" l0 cmd
  l0=$(log_lines)
  local t0; t0=$(nginx_ticks)
  set_pull "$tool" "$repo"; cmd=("${PULL[@]}")
  if /usr/bin/time -f '%e %M' -o "$tf" timeout -k 10 "$PULL_TIMEOUT" "${cmd[@]}" >"$out" 2>"$err" &&
     check_ref "$tool" "$repo" "$expected" "$op"; then
    local s k n b
    read -r s k < <(tail -n1 "$tf")
    SECS[$tool,$op]="${SECS[$tool,$op]:-} $s"
    MIB[$tool,$op]="${MIB[$tool,$op]:-} $(awk -v k="$k" 'BEGIN{printf "%.1f", k/1024}')"
    if [ -n "$count" ]; then
      read -r n b < <(served "$l0")
      SRVCPU[$tool,$op]="${SRVCPU[$tool,$op]:-} $(awk -v a="$t0" -v b="$(nginx_ticks)" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}')"
    elif [ "$tool" = oxtree ]; then  # not through nginx: oxtree's own count
      n=$(grep -o '"requests":[0-9]*' "$out" | cut -d: -f2); b=$(grep -o '"bytes":[0-9]*' "$out" | cut -d: -f2)
    else
      n='' b=''
    fi
    if [ -n "$n" ]; then
      BYTES[$tool,$op]=$b
      REQS[$tool,$op]="${REQS[$tool,$op]:-} $n"
      MB[$tool,$op]="${MB[$tool,$op]:-} $(awk -v b="$b" 'BEGIN{printf "%.1f", b/1e6}')"
    fi
    echo "  round $ROUND $tool $op: $s s, $k KiB${n:+, $n requests, $b bytes}" >&2
  else
    SECS[$tool,$op]=FAIL
    MIB[$tool,$op]=FAIL
    PROBLEMS+=("$tool $op failed: ${cmd[*]} (exit/time: $(tail -n1 "$tf" 2>/dev/null); stderr: $(tail -n3 "$err" | tr '\n' ' '))")
    echo "!!! $tool $op FAILED: ${cmd[*]}" >&2
    tail -n 20 "$err" >&2
  fi
}

# kill_test TOOL MODE CLEAN_BYTES: the pull killed (SIGKILL) KILLS times, rerun each time, then run
# to completion; records the body bytes nginx served in total / CLEAN_BYTES (one clean pull).
# The kill points are progress points, not times: KILLS points drawn uniformly from 10–90 % of
# the clean pull's bytes (seeded, the same for both tools) and sorted; run i is killed as soon as
# nginx has served it the gap to the previous point (at least 1 %). Times would miss: a rerun
# skips what earlier runs stored, so it often finishes before a kill timed on the clean pull.
kill_test() {
  local tool=$1 mode=$2 clean_b=$3 op=kill-$2
  local repo=$WORK/$tool-kill-$mode l0 lr i pid early=0 n b got want landed=()
  set_pull "$tool" "$repo"; local cmd=("${PULL[@]}")
  new_repo "$tool" "$repo" "$mode" "$NGINX_URL/v1"
  local gaps
  read -r -a gaps < <(awk -v s="$KILL_SEED" -v r="$ROUND" -v k="$KILLS" \
      'BEGIN{srand(s * 100 + r); for (i = 1; i <= k; i++) print 0.10 + 0.80 * rand()}' | sort -g |
    awk '{g = $1 - p; if (g < 0.01) g = 0.01; printf "%s ", g; p = $1} END{print ""}')
  l0=$(log_lines)
  for i in $(seq 1 "$KILLS"); do
    want=$(awk -v g="${gaps[$((i - 1))]}" -v c="$clean_b" 'BEGIN{printf "%d", g * c}')
    lr=$(log_lines)
    "${cmd[@]}" >>"$WORK/out.$tool.$op" 2>>"$WORK/err.$tool.$op" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      got=$(tail -n +"$((lr + 1))" "$ACCESS" | awk '{b += $2} END{printf "%d", b}')
      if [ "$got" -ge "$want" ]; then
        kill -9 "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.01
    done
    if wait "$pid" 2>/dev/null; then
      early=$((early + 1))
      echo "  round $ROUND $tool $op: run $i finished before its kill point" >&2
    else
      landed+=("$(awk -v g="$got" -v c="$clean_b" 'BEGIN{printf "%.0f%%", 100 * g / c}')")
      echo "  round $ROUND $tool $op: run $i killed after it was served $got bytes (wanted $want)" >&2
    fi
  done
  local ok=0
  if timeout -k 10 "$PULL_TIMEOUT" "${cmd[@]}" >>"$WORK/out.$tool.$op" 2>>"$WORK/err.$tool.$op" &&
     check_ref "$tool" "$repo" "$C1" "$op"; then
    ok=1
  fi
  read -r n b < <(served "$l0")
  local r
  r=$(awk -v a="$b" -v c="$clean_b" 'BEGIN{printf "%.3f", a/c}')
  KILLN[$tool,$mode]="${KILLN[$tool,$mode]:-} $n"
  KILLNOTE[$tool,$mode]="runs killed after being served ${landed[*]:-nothing} of a clean pull's bytes"
  [ "$early" = 0 ] || KILLNOTE[$tool,$mode]+="; $early of $KILLS runs finished before their kill point"
  if [ "$ok" = 1 ]; then
    KILLR[$tool,$mode]="${KILLR[$tool,$mode]:-} $r"
    echo "  round $ROUND $tool $op: $n requests, $b bytes in total (clean pull: $clean_b)" >&2
  else
    KILLR[$tool,$mode]=FAIL
    KILLPART[$tool,$mode]=$r
    KILLNOTE[$tool,$mode]+="; the pull after the kills FAILED (served until then: $r × a clean pull)"
    PROBLEMS+=("$tool $op: the pull after $KILLS kills failed: ${cmd[*]} (stderr: $(tail -n3 "$WORK/err.$tool.$op" | tr '\n' ' '))")
    echo "!!! $tool $op: final pull FAILED" >&2
    tail -n 20 "$WORK/err.$tool.$op" >&2
  fi
  FSCK_REPOS+=("$tool:$repo")
}

# gen_measure TOOL REPO: `static-delta generate --from=C1 --to=C2` in REPO (a copy of srv/full)
# under /usr/bin/time; records seconds, MiB, the delta's bytes (superblock + parts, in deltas/)
# and its fallback objects' bytes (as `ostree static-delta show` reads them: an interop check
# of oxtree's superblock too).
declare -A DPART DFALL
gen_measure() {
  local tool=$1 repo=$2 op=delta-generate
  local tf="$WORK/time.$tool.$op" out="$WORK/out.$tool.$op" err="$WORK/err.$tool.$op"
  if /usr/bin/time -f '%e %M' -o "$tf" timeout -k 10 "$PULL_TIMEOUT" \
       "$(bin "$tool")" static-delta generate --repo="$repo" --from="$C1" --to="$C2" >"$out" 2>"$err" &&
     "$OSTREE" static-delta show --repo="$repo" "$C1-$C2" >"$WORK/show.$tool" 2>>"$err"; then
    local s k parts fall
    read -r s k < <(tail -n1 "$tf")
    parts=$(find "$repo/deltas" -type f -printf '%s\n' | awk '{b+=$1} END{print b+0}')
    fall=$(awk -F'[:(]' '/^Total Fallback Size/{gsub(/ /,"",$2); print $2; exit}' "$WORK/show.$tool")
    SECS[$tool,$op]="${SECS[$tool,$op]:-} $s"
    MIB[$tool,$op]="${MIB[$tool,$op]:-} $(awk -v k="$k" 'BEGIN{printf "%.1f", k/1024}')"
    DPART[$tool]="${DPART[$tool]:-} $parts"
    DFALL[$tool]="${DFALL[$tool]:-} ${fall:-0}"
    GEN_REPO[$tool]=$repo
    echo "  round $ROUND $tool $op: $s s, $k KiB, delta $parts bytes, fallbacks ${fall:-0} bytes" >&2
  else
    SECS[$tool,$op]=FAIL
    MIB[$tool,$op]=FAIL
    PROBLEMS+=("$tool $op failed (stderr: $(tail -n3 "$err" | tr '\n' ' '))")
    echo "!!! $tool $op FAILED" >&2
    tail -n 20 "$err" >&2
  fi
}
declare -A GEN_REPO

ALL_OPS=(scratch-bare-user scratch-archive update scratch-delay scratch-delay2 scratch-serve delta-scratch delta-update delta-generate)
# shellcheck disable=SC2206
OPS=(${PULL_OPS:-${ALL_OPS[*]}})
for op in "${OPS[@]}"; do
  case " ${ALL_OPS[*]} " in *" $op "*) ;; *) die "unknown op $op in PULL_OPS (one of: ${ALL_OPS[*]})" ;; esac
done
case " ${OPS[*]} " in *" update "*) case " ${OPS[*]} " in *" scratch-bare-user "*) ;; *) die "update needs scratch-bare-user" ;; esac ;; esac
case " ${OPS[*]} " in *" delta-update "*) case " ${OPS[*]} " in *" delta-scratch "*) ;; *) die "delta-update needs delta-scratch" ;; esac ;; esac
# shellcheck disable=SC2206
KILL_MODES=(${KILL_MODES-bare-user archive})
declare -A LABEL=(
  [scratch-bare-user]="v1 from scratch → bare-user"
  [scratch-archive]="v1 from scratch → archive"
  [update]="update v1 → v2 (bare-user)"
  [scratch-delay]="v1 from scratch → bare-user, +${DELAY_MS} ms each way"
  [scratch-delay2]="v1 from scratch → bare-user, +${DELAY2_MS} ms each way"
  [scratch-serve]="v1 from scratch → bare-user, from \`oxtree serve\`"
  [delta-scratch]="v1 from scratch → bare-user, scratch static delta"
  [delta-update]="update v1 → v2 (bare-user), static delta"
  [delta-generate]="static-delta generate v1 → v2 (archive repo)"
)
FSCK_REPOS=()

BASE=$WORK
for ROUND in $(seq 1 "$ROUNDS"); do
  R=$BASE/round$ROUND
  mkdir -p "$R"
  WORK=$R
  for op in "${OPS[@]}"; do
    for t in "${TOOLS[@]}"; do
      case $op in
        scratch-bare-user)
          new_repo "$t" "$R/$t-bare-user" bare-user "$NGINX_URL/v1"
          measure "$t" "$op" "$R/$t-bare-user" "$C1" log ;;
        scratch-archive)
          new_repo "$t" "$R/$t-archive" archive "$NGINX_URL/v1"
          measure "$t" "$op" "$R/$t-archive" "$C1" log
          FSCK_REPOS+=("$t:$R/$t-archive") ;;
        update)  # the bare-user repo of the first row, its remote now pointing at v1+v2
          "$(bin "$t")" remote delete --repo="$R/$t-bare-user" origin
          "$(bin "$t")" remote add --repo="$R/$t-bare-user" --no-gpg-verify origin "$NGINX_URL/full"
          measure "$t" "$op" "$R/$t-bare-user" "$C2" log
          FSCK_REPOS+=("$t:$R/$t-bare-user") ;;
        scratch-delay)
          proxy_start
          new_repo "$t" "$R/$t-delay" bare-user "$PROXY_URL/v1"
          measure "$t" "$op" "$R/$t-delay" "$C1" log
          FSCK_REPOS+=("$t:$R/$t-delay")
          proxy_stop
          echo "    proxy: $(tail -n1 "$WORK/proxy.err")" >&2 ;;
        scratch-delay2)
          proxy_start "$DELAY2_MS"
          new_repo "$t" "$R/$t-delay2" bare-user "$PROXY_URL/v1"
          measure "$t" "$op" "$R/$t-delay2" "$C1" log
          FSCK_REPOS+=("$t:$R/$t-delay2")
          proxy_stop
          echo "    proxy: $(tail -n1 "$WORK/proxy.err")" >&2 ;;
        delta-scratch)
          new_repo "$t" "$R/$t-delta" bare-user "$NGINX_URL/v1delta"
          measure "$t" "$op" "$R/$t-delta" "$C1" log ;;
        delta-update)  # the repo of delta-scratch, its remote now serving the v1→v2 delta
          "$(bin "$t")" remote delete --repo="$R/$t-delta" origin
          "$(bin "$t")" remote add --repo="$R/$t-delta" --no-gpg-verify origin "$NGINX_URL/delta"
          measure "$t" "$op" "$R/$t-delta" "$C2" log
          FSCK_REPOS+=("$t:$R/$t-delta") ;;
        delta-generate)
          cp -a "$SRV/full" "$R/$t-gen"
          sync
          gen_measure "$t" "$R/$t-gen" ;;
        scratch-serve)
          new_repo "$t" "$R/$t-serve" bare-user "$SERVE_URL"
          measure "$t" "$op" "$R/$t-serve" "$C1"
          FSCK_REPOS+=("$t:$R/$t-serve") ;;
      esac
    done
  done
  # Kill test, against this round's clean pulls of the same tool and mode.
  for mode in "${KILL_MODES[@]}"; do
    case " ${OPS[*]} " in *" scratch-$mode "*) ;; *) continue ;; esac
    for t in "${TOOLS[@]}"; do
      cb=${BYTES[$t,scratch-$mode]:-}
      if [ -z "$cb" ] || [ "${SECS[$t,scratch-$mode]:-}" = FAIL ]; then
        KILLR[$t,$mode]=FAIL; PROBLEMS+=("$t kill-$mode skipped: no clean pull to compare with"); continue
      fi
      kill_test "$t" "$mode" "$cb"
    done
  done
  WORK=$BASE
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END { if (NR==0) print "n/a"; else if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2 }'; }
agg() { # median unless FAIL
  case ${1:-} in *FAIL*) echo FAIL ;; "") echo n/a ;; *) echo "$1" | median ;; esac
}
for key in "${!SECS[@]}"; do
  SECS[$key]=$(agg "${SECS[$key]}")
  case ${MIB[$key]} in *FAIL*) MIB[$key]=FAIL ;; *) MIB[$key]=$(echo "${MIB[$key]}" | tr ' ' '\n' | sort -g | tail -n1) ;; esac
done
for key in "${!REQS[@]}"; do REQS[$key]=$(agg "${REQS[$key]}"); done
for key in "${!MB[@]}"; do MB[$key]=$(agg "${MB[$key]}"); done
for key in "${!KILLR[@]}"; do KILLR[$key]=$(agg "${KILLR[$key]}"); done
for key in "${!KILLN[@]}"; do KILLN[$key]=$(agg "${KILLN[$key]}"); done
for key in "${!SRVCPU[@]}"; do SRVCPU[$key]=$(agg "${SRVCPU[$key]}"); done
for key in "${!DPART[@]}"; do DPART[$key]=$(agg "${DPART[$key]}"); done
for key in "${!DFALL[@]}"; do DFALL[$key]=$(agg "${DFALL[$key]}"); done

# --- correctness cross-checks ----------------------------------------------------------------
# Real ostree's fsck on every repo oxtree pulled (the others too: a cheap sanity check of the setup).
fsck_fail=0
for entry in "${FSCK_REPOS[@]}"; do
  t=${entry%%:*} repo=${entry#*:}
  [ -d "$repo" ] || continue
  if ! "$OSTREE" fsck --repo="$repo" >"$repo.fsck" 2>&1; then
    fsck_fail=1
    PROBLEMS+=("ostree fsck rejects the repo $t pulled: $repo ($(tail -n2 "$repo.fsck" | tr '\n' ' '))")
  fi
done
[ "$fsck_fail" = 1 ] || CHECKS+=("\`ostree fsck\` accepts all ${#FSCK_REPOS[@]} repos both tools pulled (including the ones after the kill tests)")
objset() { (cd "$1/objects" && find . -type f -name '*.*' ! -name '*.commitpartial' | sort); }
R=$BASE/round$ROUNDS
for kind in archive bare-user; do
  a=$R/ostree-$kind b=$R/oxtree-$kind
  if [ ! -d "$a" ] || [ ! -d "$b" ]; then continue; fi
  if diff <(objset "$a") <(objset "$b") >"$R/objdiff.$kind"; then
    CHECKS+=("$kind: both tools hold the same $(objset "$a" | wc -l) objects after the pulls")
  else
    CHECKS+=("!!! BUG: $kind: the object sets differ ($(grep -c '^[<>]' "$R/objdiff.$kind") lines in $R/objdiff.$kind)")
    PROBLEMS+=("$kind object sets differ")
  fi
done
bad_status=$(awk '$1 !~ /^(200|206|304|404)$/ {c[$1]++} END{for (s in c) printf "%s×%d ", s, c[s]}' "$ACCESS")
[ -z "$bad_status" ] || CHECKS+=("nginx answered other statuses too (kills show as 499): $bad_status")

# --- report ----------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0==a && b+0==b && b>0) printf "%.2f", a/b; else print "n/a" }'; }
echo
echo "v1 (\`$TREE1\`): $N1 objects, $B1 MB in the archive repo; v2 (\`$TREE2_DESC\`): $N2 new objects, $B2 MB."
echo "Served by nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') over loopback; median of $ROUNDS round(s); $(date -u +%Y-%m-%d), $(nproc) cores,"\
     "$("$OSTREE" --version | awk -F"'" '/Version/{print "ostree " $2; exit}'),"\
     "oxtree $OX_REV (binary of $(date -u -r "$OXTREE" '+%Y-%m-%d %H:%M'))"
echo
echo "| pull | ostree s | oxtree s | ratio (ostree/oxtree) | ostree requests | oxtree requests | ostree MB | oxtree MB | ostree peak MiB | oxtree peak MiB | nginx CPU s, ostree's pull | nginx CPU s, oxtree's pull |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for op in "${OPS[@]}"; do
  [ "$op" != delta-generate ] || continue
  so=${SECS[ostree,$op]:-n/a} sx=${SECS[oxtree,$op]:-n/a}
  echo "| ${LABEL[$op]} | $so | $sx | $(ratio "$so" "$sx") | ${REQS[ostree,$op]:-n/a} | ${REQS[oxtree,$op]:-n/a} | ${MB[ostree,$op]:-n/a} | ${MB[oxtree,$op]:-n/a} | ${MIB[ostree,$op]:-n/a} | ${MIB[oxtree,$op]:-n/a} | ${SRVCPU[ostree,$op]:-n/a} | ${SRVCPU[oxtree,$op]:-n/a} |"
done
sum2() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0==a && b+0==b) print a+b; else print "n/a" }'; }
mb() { awk -v b="$1" 'BEGIN{ if (b+0==b) printf "%.2f", b/1e6; else print "n/a" }'; }
GEN=0
case " ${OPS[*]} " in *" delta-generate "*) GEN=1 ;; esac
if [ "$GEN" = 1 ]; then
  echo
  echo "| delta | ostree s | oxtree s | ratio (ostree/oxtree) | ostree delta MB | oxtree delta MB | ostree fallbacks MB | oxtree fallbacks MB | ostree peak MiB | oxtree peak MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  so=${SECS[ostree,delta-generate]:-n/a} sx=${SECS[oxtree,delta-generate]:-n/a}
  echo "| ${LABEL[delta-generate]} | $so | $sx | $(ratio "$so" "$sx") | $(mb "${DPART[ostree]:-}") | $(mb "${DPART[oxtree]:-}") | $(mb "${DFALL[ostree]:-}") | $(mb "${DFALL[oxtree]:-}") | ${MIB[ostree,delta-generate]:-n/a} | ${MIB[oxtree,delta-generate]:-n/a} |"
fi
if [ ${#KILL_MODES[@]} -gt 0 ]; then
echo
echo "Kill test: the scratch pull killed (SIGKILL) $KILLS times at random points (10–90 % of a clean pull's bytes, sorted), rerun each time, then run to completion:"
echo
echo "| kill test | ostree bytes served / one clean pull | oxtree bytes served / one clean pull | ostree requests | oxtree requests |"
echo "|---|---:|---:|---:|---:|"
for mode in "${KILL_MODES[@]}"; do
  kr=()
  for t in "${TOOLS[@]}"; do
    v=${KILLR[$t,$mode]:-n/a}
    [ -z "${KILLPART[$t,$mode]:-}" ] || v="$v (${KILLPART[$t,$mode]} before failing)"
    kr+=("$v")
  done
  echo "| $KILLS kills, $mode | ${kr[0]} | ${kr[1]} | ${KILLN[ostree,$mode]:-n/a} | ${KILLN[oxtree,$mode]:-n/a} |"
done
echo
for mode in "${KILL_MODES[@]}"; do
  for t in "${TOOLS[@]}"; do
    [ -z "${KILLNOTE[$t,$mode]:-}" ] || echo "- $t, $mode (last round): ${KILLNOTE[$t,$mode]}."
  done
done
fi
echo
# Targets from the issue.
target() { # label value op threshold
  local ok
  ok=$(awk -v v="$2" -v t="$4" -v op="$3" 'BEGIN{ if (v+0!=v) print "n/a"; else if ((op==">=" && v>=t) || (op=="<=" && v<=t)) print "met"; else print "NOT met" }')
  echo "- $1: $2 (target $3 $4): $ok"
}
echo "Targets (issue 13):"
target "scratch pull → bare-user, ostree/oxtree time" "$(ratio "${SECS[ostree,scratch-bare-user]:-}" "${SECS[oxtree,scratch-bare-user]:-}")" ">=" 5
target "update v1 → v2, ostree/oxtree time" "$(ratio "${SECS[ostree,update]:-}" "${SECS[oxtree,update]:-}")" ">=" 4
target "scratch pull at +${DELAY_MS} ms, ostree/oxtree time" "$(ratio "${SECS[ostree,scratch-delay]:-}" "${SECS[oxtree,scratch-delay]:-}")" ">=" 8
target "scratch pull at +${DELAY2_MS} ms, ostree/oxtree time" "$(ratio "${SECS[ostree,scratch-delay2]:-}" "${SECS[oxtree,scratch-delay2]:-}")" ">=" 12
for mode in "${KILL_MODES[@]}"; do
  target "oxtree bytes served after $KILLS kills ($mode) / one clean pull" "${KILLR[oxtree,$mode]:-n/a}" "<=" 1.02
done
for op in delta-scratch delta-update; do
  target "oxtree/ostree peak memory, ${LABEL[$op]}" "$(ratio "${MIB[oxtree,$op]:-}" "${MIB[ostree,$op]:-}")" "<=" 1
done
target "oxtree client: time from \`oxtree serve\` / time from nginx" "$(ratio "${SECS[oxtree,scratch-serve]:-}" "${SECS[oxtree,scratch-bare-user]:-}")" "<=" 1.0
if [ "$GEN" = 1 ]; then
  target "static-delta generate v1 → v2, ostree/oxtree time" "$(ratio "${SECS[ostree,delta-generate]:-}" "${SECS[oxtree,delta-generate]:-}")" ">=" 4
  target "static-delta generate v1 → v2, oxtree/ostree delta bytes (parts + superblock)" "$(ratio "${DPART[oxtree]:-}" "${DPART[ostree]:-}")" "<=" 1
  target "static-delta generate v1 → v2, oxtree/ostree bytes with the fallback objects" \
    "$(ratio "$(sum2 "${DPART[oxtree]:-}" "${DFALL[oxtree]:-}")" "$(sum2 "${DPART[ostree]:-}" "${DFALL[ostree]:-}")")" "<=" 1
fi
# The floors under the pulls into bare-user: what any client must spend here on the objects
# (inflate, SHA-256, create, rename, xattr; network and server not counted), from the limits
# probe run on v1 for the scratch pull and on v2's new files for the update (bench.sh prints
# the probe's whole output). Then the same with the server's share of the cores: nginx's CPU
# time during oxtree's pull, spread over them, is time no client on this machine gets back.
floor_lines() { # op tree what
  local op=$1 out=$BASE/limits.$1.out f fs
  [ -n "${SECS[oxtree,$op]:-}" ] && [ "${SECS[oxtree,$op]}" != FAIL ] || return 0
  if ! "$LIMITS" "$2" "$BASE" >"$out" 2>&1; then
    echo "limits probe failed on $2: $(tail -n 3 "$out")" >&2
    return 0
  fi
  f=$(awk '$1 == "floor" && $2 == "pull-bare-user" { print $3 }' "$out")
  echo "- floor of the $3 on this machine (\`limits\` probe on $(head -n1 "$out" | sed 's/^tree: //'), network not counted): $f s;" \
    "oxtree at $(ratio "${SECS[oxtree,$op]}" "$f")× it, best ratio any client could reach: $(ratio "${SECS[ostree,$op]:-}" "$f")"
  fs=$(awk -v f="$f" -v c="${SRVCPU[oxtree,$op]:-}" -v n="$(nproc)" 'BEGIN{ if (c+0==c) printf "%.3f", f + c/n; else print "n/a" }')
  echo "- the same floor with nginx's CPU time during oxtree's pull (${SRVCPU[oxtree,$op]:-n/a} s) spread over the $(nproc) cores: $fs s;" \
    "oxtree at $(ratio "${SECS[oxtree,$op]}" "$fs")× it, best ratio any client could reach: $(ratio "${SECS[ostree,$op]:-}" "$fs")"
}
# update_tree DIR: v2's new and changed files (one per distinct content) and symlinks, copied
# from the v2 tree(s): what the update pull must store.
update_tree() {
  local roots=("$TREE2")
  [ -n "$TREE2" ] || roots=("$WORK/extra" "$TREE1")
  "$OSTREE" diff --repo="$SRV/full" "$C1" "$C2" | awk '$1 == "A" || $1 == "M" { sub(/^[AM] +/, ""); print }' |
    python3 -c '
import hashlib, os, shutil, sys
dest, roots = sys.argv[1], sys.argv[2:]
seen = set()
for line in sys.stdin:
    p = line.rstrip("\n").lstrip("/")
    src = next((os.path.join(r, p) for r in roots if os.path.lexists(os.path.join(r, p))), None)
    if src is None:
        continue
    d = os.path.join(dest, p)
    if os.path.islink(src):
        os.makedirs(os.path.dirname(d), exist_ok=True)
        os.symlink(os.readlink(src), d)
    elif os.path.isdir(src):
        os.makedirs(d, exist_ok=True)
    elif os.path.isfile(src):
        h = hashlib.sha256(open(src, "rb").read()).digest()
        if h in seen:
            continue
        seen.add(h)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copyfile(src, d)
' "$1" "${roots[@]}"
}
if [ "${LIMITS:-}" != 0 ]; then
  if [ -z "${LIMITS:-}" ]; then
    (cd "$ROOT" && cargo build --release -p oxtree --example limits >&2)
    LIMITS=$ROOT/target/release/examples/limits
  fi
  floor_lines scratch-bare-user "$TREE1" "scratch pull → bare-user"
  # (limits.out: the scratch probe's whole output, as before)
  [ ! -f "$BASE/limits.scratch-bare-user.out" ] || cp "$BASE/limits.scratch-bare-user.out" "$BASE/limits.out"
  if [ -n "${SECS[oxtree,update]:-}" ]; then
    rm -rf "$BASE/update-tree"
    if update_tree "$BASE/update-tree"; then
      floor_lines update "$BASE/update-tree" "update v1 → v2"
    else
      echo "could not gather v2's new files for the update floor" >&2
    fi
  fi
  # Delta generation spends its time in xz. The floor: the part's bytes (oxtree's, unpacked)
  # compressed by the xz tool at presets 4–6 on all cores (liblzma, one block per core, as
  # oxtree does) and at 6 on one; the fastest preset whose output is no larger than ostree's
  # part is the least any tool needs to meet the byte target here.
  if [ "$GEN" = 1 ] && [ -n "${GEN_REPO[oxtree]:-}" ]; then
    raw=$BASE/delta-part.raw
    : >"$raw"
    for part in $(find "${GEN_REPO[oxtree]}/deltas" -type f ! -name superblock | sort); do
      case $(head -c1 "$part") in
        x) tail -c +2 "$part" | xz -d >>"$raw" ;;
        *) tail -c +2 "$part" >>"$raw" ;;
      esac
    done
    len=$(stat -c %s "$raw") n=$(nproc)
    opart=$(awk -F'[:(]' '/^Total Part Size/{gsub(/ /,"",$2); print $2; exit}' "$BASE/round$ROUNDS/show.ostree" 2>/dev/null || true)
    xz_best() { # xz args...: "seconds bytes", best of 3
      local i t0 t1 b best=
      for i in 1 2 3; do
        t0=$(date +%s.%N); b=$(xz -c "$@" "$raw" | wc -c); t1=$(date +%s.%N)
        best=$(awk -v a="$best" -v d="$(awk -v x="$t0" -v y="$t1" 'BEGIN{print y-x}')" 'BEGIN{ if (a == "" || d < a) print d; else print a }')
      done
      printf '%.3f %s\n' "$best" "$b"
    }
    block=$(( (len + n - 1) / n ))
    xzfloor=
    echo "- xz on the delta's $(mb "$len") MB of part contents (ostree's part: $(mb "${opart:-}") MB compressed):"
    for preset in 4 5 6; do
      read -r xs xb < <(xz_best -"$preset" -T"$n" --block-size="$block")
      fits=$(awk -v b="$xb" -v o="${opart:-0}" 'BEGIN{ print (o > 0 && b <= o) ? "yes" : "no" }')
      echo "  - preset $preset on $n cores: $xs s, $(mb "$xb") MB (no larger than ostree's part: $fits)"
      [ -n "$xzfloor" ] || [ "$fits" != yes ] || xzfloor=$xs
    done
    read -r xs xb < <(xz_best -6 -T1)
    echo "  - preset 6 on one core (one block): $xs s, $(mb "$xb") MB"
    if [ -n "$xzfloor" ]; then
      echo "- floor of static-delta generate at no more bytes than ostree's part: $xzfloor s; oxtree at" \
        "$(ratio "${SECS[oxtree,delta-generate]:-}" "$xzfloor")× it, best ratio any tool could reach: $(ratio "${SECS[ostree,delta-generate]:-}" "$xzfloor")"
    fi
    rm -f "$raw"
  fi
fi
echo
for c in "${CHECKS[@]}"; do echo "- $c"; done
if [ ${#PROBLEMS[@]} -gt 0 ]; then
  echo
  echo "PROBLEMS (${#PROBLEMS[@]}): logs in $BASE/round*/ (err.TOOL.OP, out.TOOL.OP)"
  for p in "${PROBLEMS[@]}"; do echo "  - $p"; done
  exit 1
fi
