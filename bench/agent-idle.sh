#!/bin/bash
# Idle cost of `oxtree agent`: a sysroot on v1 following a signed static graph served by
# `oxtree serve` (no update offered), the agent with its default 300 s poll interval; after a
# warm-up, sample its RSS (VmRSS) and CPU time (utime+stime from /proc/PID/stat) for
# AGENT_IDLE_SECS (default 600). Prints peak RSS and average CPU %, and the kernel's
# high-water mark (VmHWM: the most the agent ever had resident, startup and checks included).
#
#   bench/agent-idle.sh                       # builds the release binary first
#   OXTREE=target/release/oxtree AGENT_IDLE_SECS=300 bench/agent-idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${AGENT_IDLE_SECS:-600}
if [ -z "${OXTREE:-}" ]; then
  cargo build --release -q -p oxtree-cli
  OXTREE=$PWD/target/release/oxtree
fi
W=$(mktemp -d /var/tmp/oxtree-agent-idle.XXXXXX)
cleanup() {
  [ -n "${AGENT:-}" ] && kill "$AGENT" 2>/dev/null || true
  [ -n "${SERVE:-}" ] && kill "$SERVE" 2>/dev/null || true
  wait 2>/dev/null || true
  chattr -R -i "$W" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ox() { "$OXTREE" "$@"; }

# Keys (ostree's ed25519 format: base64 of seed||public).
openssl genpkey -algorithm ed25519 -out "$W/k.pem"
SEED=$(openssl pkey -in "$W/k.pem" -outform DER | tail -c 32 | base64 -w0)
PUB=$(openssl pkey -in "$W/k.pem" -pubout -outform DER | tail -c 32 | base64 -w0)
SK=$( (openssl pkey -in "$W/k.pem" -outform DER | tail -c 32; openssl pkey -in "$W/k.pem" -pubout -outform DER | tail -c 32) | base64 -w0)
: "$SEED"

# A minimal bootable tree.
T=$W/tree
mkdir -p "$T/usr/lib/modules/6.1.0" "$T/usr/etc" "$T/sysroot" "$T/boot"
head -c 4096 /dev/zero >"$T/usr/lib/modules/6.1.0/vmlinuz"
head -c 2048 /dev/zero >"$T/usr/lib/modules/6.1.0/initramfs.img"
printf 'NAME=Bench\nID=bench\n' >"$T/usr/lib/os-release"
ox init --repo="$W/srv" --mode=archive
C=$(ox commit --repo="$W/srv" -b os/stable -s v1 --add-metadata-string=version=1.0 --sign="$SK" "$T")
ox summary --repo="$W/srv" -u
mkdir -p "$W/srv/graph/os"
ox graph init "$W/srv/graph/os/stable.json" --stream os/stable
ox --repo="$W/srv" graph add "$W/srv/graph/os/stable.json" "$C" >/dev/null
ox graph sign "$W/srv/graph/os/stable.json" "$SK" --expires "30 days" >/dev/null
# Started directly (not through the `ox` function) so $! is oxtree's own pid.
"$OXTREE" serve --repo="$W/srv" --port 0 2>"$W/serve.log" &
SERVE=$!
for _ in $(seq 50); do grep -q 'http://' "$W/serve.log" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -o 'http://[0-9.:]*' "$W/serve.log" | head -1)

SR=$W/sysroot
mkdir -p "$SR"
ox admin init-fs "$SR"
ox admin os-init --sysroot="$SR" os
ox remote add --repo="$SR/ostree/repo" --no-gpg-verify --set=sign-verify=true \
  --set=verification-ed25519-key="$PUB" origin "$URL" os/stable
ox pull --repo="$SR/ostree/repo" origin os/stable >/dev/null
ox admin deploy --sysroot="$SR" --os=os --karg=root=LABEL=root origin:os/stable >/dev/null
echo boot-1 >"$W/boot_id"
mkdir -p "$W/agent.d"
cat >"$W/agent.d/10-bench.toml" <<EOF
[agent]
state_dir = "$W/state"
run_dir = "$W/run"
sysroot = "$SR"
boot_id_path = "$W/boot_id"
[identity]
node_uuid = "bench"
[reboot]
command = ["/bin/true"]
motd_path = "$W/motd"
EOF
"$OXTREE" agent --config-dir="$W/agent.d" run 2>"$W/agent.log" &
AGENT=$!
sleep 5
ox agent --config-dir="$W/agent.d" status | head -3

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$AGENT/stat"; }
c0=$(cpu)
peak=0
for _ in $(seq "$SECS"); do
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT/status")
  [ "$rss" -gt "$peak" ] && peak=$rss
  sleep 1
done
c1=$(cpu)
grep -E 'VmHWM|VmRSS|RssAnon|RssFile' "/proc/$AGENT/status" | tr -s ' \t' ' ' | paste -sd' '
awk -v c="$((c1 - c0))" -v t="$ticks" -v s="$SECS" -v p="$peak" 'BEGIN {
  printf "oxtree agent idle over %d s: peak RSS %.1f MiB, CPU %.4f %% (%.2f s of CPU)\n", s, p / 1024, 100 * c / t / s, c / t }'
grep -c 'checking' "$W/agent.log" | sed 's/^/update checks during the run (incl. the first): /'
