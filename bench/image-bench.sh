#!/usr/bin/env bash
# bench/image-bench.sh — what `oxtree image build` and the systemd-boot ESP mirror cost.
#
# 1. Image build of a real tree: the repo REF given by IMAGE_REPO/IMAGE_REF (default: the
#    Debian tree the OVMF e2e committed, target/ovmf-e2e/updates/repo), ROUNDS times; prints
#    the time of each step (the sysroot: pull + deploy + ESP mirror; the GPT; the FAT ESP;
#    mkfs.ext4 -d), the sizes (disk, allocated, ESP files, sysroot) and the total.
# 2. ESP mirror update per deploy: a sysroot whose commits carry a kernel and initramfs of
#    KERNEL_MB + INITRD_MB (random, so every deploy brings a new bootcsum), DEPLOYS deploys
#    with the BLS-only backend and DEPLOYS with the systemd-boot backend (the ESP on the same
#    filesystem, a directory); the difference per deploy is the mirror's cost (copying the
#    new kernel and initramfs, the entries, removing the old ones).
# Not a test: timings only, nothing asserted. Needs root (deploy writes root-owned files).
# Env: OXTREE (target/release/oxtree), BENCH_WORK (/var/tmp/oxtree-image-bench), ROUNDS (3),
# DEPLOYS (5), KERNEL_MB (8), INITRD_MB (30).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OXTREE=${OXTREE:-$ROOT/target/release/oxtree}
W=${BENCH_WORK:-/var/tmp/oxtree-image-bench}
ROUNDS=${ROUNDS:-3}
DEPLOYS=${DEPLOYS:-5}
KERNEL_MB=${KERNEL_MB:-8}
INITRD_MB=${INITRD_MB:-30}
IMAGE_REPO=${IMAGE_REPO:-$ROOT/target/ovmf-e2e/updates/repo}
IMAGE_REF=${IMAGE_REF:-debian/bookworm/x86_64}
[ -x "$OXTREE" ] || cargo build --release -p oxtree-cli
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.2f", a-b}'; }
rm -rf "$W"
mkdir -p "$W"

echo "== image build: $IMAGE_REPO $IMAGE_REF"
if [ -d "$IMAGE_REPO" ]; then
  for r in $(seq "$ROUNDS"); do
    rm -f "$W/disk.img"
    "$OXTREE" image build --repo="$IMAGE_REPO" "$IMAGE_REF" "$W/disk.img" --stateroot=debian \
      --karg=console=ttyS0 --json >"$W/report.json" 2>/dev/null
    python3 - "$W/report.json" "$r" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["seconds"]
mib = lambda b: b / 2**20
print(f"round {sys.argv[2]}: " + ", ".join(f"{k} {v:.2f} s" for k, v in s.items()))
print(f"  disk {mib(r['size']):.0f} MiB ({mib(r['allocated']):.0f} MiB allocated); "
      f"ESP {mib(r['esp']['size']):.0f} MiB with {mib(r['esp']['bytes']):.1f} MiB of files; "
      f"root {mib(r['root']['size']):.0f} MiB (needs {mib(r['root']['min_size']):.0f}), "
      f"sysroot {mib(r['root']['sysroot_bytes']):.0f} MiB in {r['root']['sysroot_inodes']} inodes")
EOF
  done
else
  echo "  (no $IMAGE_REPO: run tests/e2e/ovmf-boot.sh first, or set IMAGE_REPO/IMAGE_REF)"
fi

echo "== ESP mirror per deploy (kernel $KERNEL_MB MiB + initramfs $INITRD_MB MiB)"
tree=$W/tree
mkdir -p "$tree/usr/lib/modules/6.1.0" "$tree/usr/etc" "$tree/sysroot" "$tree/boot"
printf 'NAME=Bench\nPRETTY_NAME="Bench"\n' >"$tree/usr/lib/os-release"
for mode in bls systemd-boot; do
  sr=$W/sr-$mode esp=$W/esp-$mode
  mkdir -p "$sr" "$esp"
  "$OXTREE" admin init-fs "$sr" >/dev/null
  "$OXTREE" admin os-init --sysroot="$sr" bench >/dev/null
  if [ "$mode" = systemd-boot ]; then
    printf '\n[sysroot]\nbootloader=none\nboot-counting-tries=3\n\n[oxtree]\nbootloader=systemd-boot\n' >>"$sr/ostree/repo/config"
  fi
  total=0
  for i in $(seq 0 "$DEPLOYS"); do
    head -c "$((KERNEL_MB << 20))" /dev/urandom >"$tree/usr/lib/modules/6.1.0/vmlinuz"
    head -c "$((INITRD_MB << 20))" /dev/urandom >"$tree/usr/lib/modules/6.1.0/initramfs.img"
    "$OXTREE" commit --repo="$sr/ostree/repo" -b bench/main -s "$i" --tree=dir="$tree" >/dev/null
    sync
    s=$(now)
    "$OXTREE" admin deploy --sysroot="$sr" --esp="$esp" --os=bench bench/main >/dev/null
    t=$(since "$s")
    # The first deploy fills an empty sysroot; count the ones that replace a kernel.
    [ "$i" -gt 0 ] && total=$(awk -v a="$total" -v b="$t" 'BEGIN{print a+b}')
  done
  printf '  %-13s %.2f s per deploy (mean of %d)\n' "$mode" "$(awk -v a="$total" -v n="$DEPLOYS" 'BEGIN{print a/n}')" "$DEPLOYS"
  chattr -R -i "$sr" 2>/dev/null || true
done
ls "$W/esp-systemd-boot/loader/entries"
rm -rf "$W"
