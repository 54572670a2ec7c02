#!/usr/bin/env bash
# tests/e2e/ovmf-boot.sh — a disk made by `oxtree image build` boots through real UEFI
# firmware (OVMF) and systemd-boot, which counts the boots and falls back by itself.
#
# Beside qemu-boot.sh (direct kernel boots, the host plays the bootloader), here the host
# only builds the disk once, then powers the machine on, waits, reads the serial console
# (and, read-only, the ESP's entry names between power-ons). Everything else is the
# firmware's, systemd-boot's and the guest's:
#   - the tree has oxtree from its Debian package (dist/deb/build.sh, installed with dpkg)
#     and Debian's systemd-boot (bootctl, systemd-bless-boot, the EFI binary the image
#     build puts at EFI/BOOT/BOOTX64.EFI);
#   - `oxtree image build` makes the GPT disk (ESP + ext4 sysroot), with boot counting
#     (2 tries); OVMF with a fresh copy of its variables boots it, `-machine q35`, TCG.
#
#   boot 1  v1        came through systemd-boot (LoaderInfo, LoaderBootCountPath: sd-boot
#                     renamed the entry +2 -> +1-1 before starting the kernel); the health
#                     checks pass and systemd-bless-boot marks it good; `admin upgrade
#                     --stage` v2; the finalize at shutdown is stopped (test failpoint) in
#                     the middle of mirroring the entries onto the ESP and the power is cut
#   boot 2  v2        systemd-boot booted the staged upgrade from the half-updated ESP;
#                     blessed; v3 (whose health check fails) staged
#   boot 3,4 v3       systemd-boot counts it down (+2 -> +1-1 -> +0-2, renamed by the
#                     bootloader: LoaderBootCountPath); its health check fails, so
#                     boot-complete.target is never reached and nothing blesses it
#   boot 5  v2        out of tries, v3 sorts last: systemd-boot boots v2 by itself, with no
#                     host step; `admin status` reports v3 FAILED
#
# Env: OXTREE (host binary; target/release/oxtree), OXTREE_GUEST (the guest's, with
# failpoints; target/failpoints/release/oxtree), E2E_WORK (target/ovmf-e2e), E2E_LOGS
# (target/ovmf-e2e-logs), E2E_CACHE (/var/cache/oxtree-e2e, shared with qemu-boot.sh),
# BOOT_TIMEOUT (300 s per boot), SMP, MEM, MIRROR. Needs root (debootstrap, chroot,
# root-owned files). Installs what it needs that is missing: ovmf, mtools, qemu-system-x86,
# debootstrap, e2fsprogs, fdisk, openssl (systemd-boot for the tree comes with apt-get download).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OXTREE=${OXTREE:-$ROOT/target/release/oxtree}
OXTREE_GUEST=${OXTREE_GUEST:-$ROOT/target/failpoints/release/oxtree}
W=${E2E_WORK:-$ROOT/target/ovmf-e2e}
LOGS=${E2E_LOGS:-$ROOT/target/ovmf-e2e-logs}
CACHE=${E2E_CACHE:-/var/cache/oxtree-e2e}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
SMP=${SMP:-2}
MEM=${MEM:-2048}
OS=debian
REF=debian/bookworm/x86_64
TRIES=2
# The same package list as qemu-boot.sh: one cached debootstrap for both.
INCLUDE=linux-image-amd64,systemd-sysv,udev,kmod,initramfs-tools
UPDATES_URL=file:///run/oxtree-updates/repo
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd

T0=$(date +%s)
log() { echo "[ovmf-e2e $(($(date +%s) - T0))s] $*" | tee -a "$LOGS/summary.txt" >&2; }
FAILS=0
pass() { log "PASS $*"; }
fail() { log "FAIL $*"; FAILS=$((FAILS + 1)); }
ox() { "$OXTREE" "$@"; }

. "$ROOT/tests/e2e/lib.sh"

phase_host() {
  local need=()
  [ -f "$OVMF_CODE" ] || need+=(ovmf)
  command -v mdir >/dev/null || need+=(mtools)
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
  command -v sfdisk >/dev/null || need+=(fdisk)
  command -v openssl >/dev/null || need+=(openssl)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# systemd-boot and its EFI binary at exactly the version of the tree's systemd (the
# package requires it), downloaded once into the cache.
fetch_systemd_boot() {
  local ver=$1 p
  mkdir -p "$CACHE/debs"
  for p in systemd-boot systemd-boot-efi; do
    if ! ls "$CACHE/debs/${p}_${ver//:/%3a}_"*.deb >/dev/null 2>&1; then
      (cd "$CACHE/debs" && { apt-get download "$p=$ver" >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download "$p=$ver" >/dev/null; }; })
    fi
  done
}

# -------------------------------------------------------------------------- tree ----
write_driver() {
  local t=$1
  mkdir -p "$t/usr/libexec" "$t/usr/share/oxtree-e2e"
  echo v1 >"$t/usr/share/oxtree-e2e/version"
  cat >"$t/usr/libexec/oxtree-e2e" <<'EOF'
#!/bin/sh
# e2e driver: reports this boot on the second serial port, then takes the step this
# version calls for (no host input: the host only powers the machine on), powers off.
exec >/dev/ttyS1 2>&1
up() { cut -d' ' -f1 /proc/uptime; }
yn() { if "$@"; then echo yes; else echo no; fi; }
# systemd's boot loader interface variables (UTF-16 after 4 bytes of attributes; efivarfs
# files cannot be seeked, so read them whole).
efivar() {
  f=/sys/firmware/efi/efivars/$1-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
  if [ -e "$f" ]; then cat "$f" | tail -c +5 | tr -d '\000'; else echo none; fi
}
version=$(cat /usr/share/oxtree-e2e/version)
echo "E2E-BEGIN uptime=$(up)"
echo "E2E-VERSION $version"
echo "E2E-CMDLINE $(cat /proc/cmdline)"
printf 'E2E-LOADER-INFO %s\n' "$(efivar LoaderInfo)"
printf 'E2E-LOADER-ENTRY %s\n' "$(efivar LoaderEntrySelected)"
printf 'E2E-BOOT-COUNT-PATH %s\n' "$(efivar LoaderBootCountPath)"
echo "E2E-ESP-MOUNTED $(yn mountpoint -q /efi)"
echo "E2E-HEALTH $(systemctl show -p Result --value oxtree-boot-complete.service) $(systemctl show -p ActiveState --value oxtree-boot-complete.service)"
echo "E2E-BOOT-COMPLETE-TARGET $(systemctl is-active boot-complete.target)"
echo "E2E-BLESS $(systemctl show -p Result --value systemd-bless-boot.service) $(systemctl show -p ActiveState --value systemd-bless-boot.service)"
echo "E2E-USR-RO $(yn sh -c '! touch /usr/.e2e-write-test 2>/dev/null')"
echo "E2E-BOOTCTL"; bootctl status --no-pager 2>&1 | sed -n '/^System:/,/^$/p;/Current Boot Loader:/,/^$/p'
echo "E2E-ENTRIES $(ls /efi/loader/entries | tr '\n' ' ')"
echo "E2E-STATUS-BEFORE"; oxtree admin status
updates() { mkdir -p /run/oxtree-updates && mount -o ro /dev/vdb /run/oxtree-updates; }
rc=0
step=none
case "$version" in
  v1)
    step=upgrade-cut-in-esp-mirror
    # The finalize at shutdown stops half-way through mirroring the entries onto the
    # ESP (after the loader swap), so the host can cut the power there.
    mkdir -p /run/systemd/system/oxtree-finalize-staged.service.d
    printf '[Service]\nEnvironment=FAILPOINTS=esp::entry=return(hang)\n' \
      >/run/systemd/system/oxtree-finalize-staged.service.d/e2e-hang.conf
    systemctl daemon-reload
    updates && oxtree admin upgrade --stage || rc=$? ;;
  v2)
    if [ ! -e /var/lib/oxtree-e2e/v3-staged ]; then
      step=stage-v3
      mkdir -p /var/lib/oxtree-e2e
      { updates && oxtree pull origin e2e/broken &&
        oxtree admin deploy --stage origin:e2e/broken && touch /var/lib/oxtree-e2e/v3-staged; } || rc=$?
    fi ;;
esac
echo "E2E-STEP $step rc=$rc uptime=$(up)"
echo "E2E-STATUS-AFTER"; oxtree admin status
sync
echo "E2E-END uptime=$(up)"
systemctl poweroff --no-block
EOF
  chmod 0755 "$t/usr/libexec/oxtree-e2e"
  cat >"$t/usr/lib/systemd/system/oxtree-e2e.service" <<'EOF'
[Unit]
Description=oxtree e2e test driver
After=local-fs.target systemd-tmpfiles-setup.service oxtree-boot-complete.service systemd-bless-boot.service
[Service]
Type=oneshot
ExecStart=/usr/libexec/oxtree-e2e
[Install]
WantedBy=multi-user.target
EOF
  ln -sf /usr/lib/systemd/system/oxtree-e2e.service "$t/etc/systemd/system/multi-user.target.wants/"
  ln -sf /usr/lib/systemd/system/multi-user.target "$t/etc/systemd/system/default.target"
  ln -sf /dev/null "$t/etc/systemd/system/serial-getty@ttyS0.service"
  ln -sf /dev/null "$t/etc/systemd/system/getty.target"
  echo oxtree-ovmf-e2e >"$t/etc/hostname"
  : >"$t/etc/machine-id"
  cat >"$t/etc/oxtree/health.d/10-booted" <<'EOF'
#!/bin/sh
test -e /run/ostree-booted
EOF
  chmod 0755 "$t/etc/oxtree/health.d/10-booted"
}

phase_tree() {
  local t=$W/tree kver sdver
  [ -d "$t" ] && rm -rf "$t"
  mkdir -p "$W"
  cp -a "$CACHE/rootfs" "$t"
  kver=$(ls "$t/usr/lib/modules" | head -1)
  rm -rf "$t"/var/cache/apt/archives/*.deb "$t"/var/lib/apt/lists/*
  (cd "$t/usr/lib/modules/$kver/kernel" &&
    rm -rf drivers/gpu drivers/net/wireless drivers/media drivers/infiniband \
      drivers/staging sound net/wireless net/mac80211 drivers/bluetooth \
      drivers/iio drivers/hid drivers/isdn drivers/scsi/lpfc drivers/scsi/qla2xxx)
  chroot "$t" depmod "$kver"
  # systemd-boot (bless-boot, bootctl, the EFI binary), at the tree's systemd version.
  sdver=$(chroot "$t" dpkg-query -W -f '${Version}' systemd)
  fetch_systemd_boot "$sdver"
  mkdir -p "$t/tmp/debs"
  cp "$CACHE/debs/systemd-boot_${sdver}_"*.deb "$CACHE/debs/systemd-boot-efi_${sdver}_"*.deb "$t/tmp/debs/"
  # A small initramfs: only the modules a virtio VM needs (before oxtree's package
  # triggers update-initramfs).
  sed -i 's/^MODULES=.*/MODULES=list/' "$t/etc/initramfs-tools/initramfs.conf"
  printf '%s\n' virtio_pci virtio_blk ext4 >>"$t/etc/initramfs-tools/modules"
  # oxtree from its Debian package (instead of dist/install.sh).
  SOURCE_DATE_EPOCH=$T0 DEB_COMPRESS=gzip "$ROOT/dist/deb/build.sh" "$t/tmp/debs" "$OXTREE_GUEST" >/dev/null
  chroot "$t" sh -c 'dpkg -i /tmp/debs/*.deb' >"$LOGS/dpkg.log" 2>&1 || { cat "$LOGS/dpkg.log"; exit 1; }
  rm -rf "$t/tmp/debs"
  chroot "$t" dpkg-query -W oxtree systemd-boot systemd-boot-efi >>"$LOGS/dpkg.log"
  if ! chroot "$t" lsinitramfs "/boot/initrd.img-$kver" >"$W/initramfs.list" ||
    ! grep -q 'usr/bin/oxtree$' "$W/initramfs.list"; then
    fail "the initramfs (made by the package's update-initramfs trigger) does not carry oxtree"
    exit 1
  fi
  [ -f "$t/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ] || { fail "no systemd-boot EFI binary in the tree"; exit 1; }
  [ -L "$t/etc/systemd/system/boot-complete.target.requires/oxtree-boot-complete.service" ] ||
    { fail "the package's postinst did not hook the health checks into boot-complete.target"; exit 1; }
  rm -f "$t"/boot/*.dpkg-bak "$t"/boot/*.new
  write_driver "$t"
  # Where the booted system mounts the ESP (the image build adds the fstab line).
  mkdir -p "$t/efi"
  # The OSTree layout.
  mv "$t/boot/vmlinuz-$kver" "$t/usr/lib/modules/$kver/vmlinuz"
  mv "$t/boot/initrd.img-$kver" "$t/usr/lib/modules/$kver/initramfs.img"
  rm -rf "$t"/boot/* "$t"/vmlinuz* "$t"/initrd.img*
  mv "$t/etc" "$t/usr/etc"
  rm -rf "$t"/dev/* "$t"/tmp/* "$t"/run/* "$t"/proc/* "$t"/sys/*
  rm -rf "$t/var"
  mkdir "$t/var"
  local d
  for d in home opt srv mnt; do rm -rf "${t:?}/$d"; ln -s "var/$d" "$t/$d"; done
  rm -rf "$t/root" "$t/media" "$t/usr/local"
  ln -s var/roothome "$t/root"
  ln -s run/media "$t/media"
  ln -s ../var/usrlocal "$t/usr/local"
  mkdir -p "$t/sysroot"
  ln -s sysroot/ostree "$t/ostree"
  cat >"$t/usr/lib/tmpfiles.d/oxtree-e2e-var.conf" <<'EOF'
d /var/home 0755 root root -
d /var/roothome 0700 root root -
d /var/opt 0755 root root -
d /var/srv 0755 root root -
d /var/mnt 0755 root root -
d /var/usrlocal 0755 root root -
d /var/lib 0755 root root -
d /var/log 0755 root root -
d /var/cache 0755 root root -
d /var/tmp 1777 root root -
d /run/media 0755 root root -
EOF
  log "tree ready: $(du -sh "$t" | cut -f1), kernel $kver, systemd-boot $sdver, $(grep -o 'oxtree.*' "$LOGS/dpkg.log" | head -1)"
}

# ------------------------------------------------------------------ commits, image ----
make_key() {
  openssl genpkey -algorithm ed25519 -out "$W/sign.pem" 2>/dev/null
  { openssl pkey -in "$W/sign.pem" -outform DER | tail -c 32
    openssl pkey -in "$W/sign.pem" -pubout -outform DER | tail -c 32; } | base64 -w0 >"$W/sign.secret"
  openssl pkey -in "$W/sign.pem" -pubout -outform DER | tail -c 32 | base64 -w0 >"$W/sign.public"
}
commit() { # NAME BRANCH
  ox --repo="$W/updates/repo" commit -b "$2" -s "$1" --add-metadata-string=version="$1" \
    --sign="$(cat "$W/sign.secret")" --tree=dir="$W/tree" >"$W/$1.commit"
  log "commit $1 ($2): $(cut -c1-12 "$W/$1.commit")"
}
phase_image() {
  local s t
  rm -rf "$W/updates" "$W/disk.img"
  mkdir -p "$W/updates"
  ox --repo="$W/updates/repo" init --mode=archive
  make_key
  commit v1 "$REF"
  s=$(date +%s.%N)
  ox image build --repo="$W/updates/repo" "$REF" "$W/disk.img" --stateroot="$OS" \
    --karg=console=ttyS0 --boot-counting-tries="$TRIES" \
    --remote=origin="$UPDATES_URL" --no-gpg-verify --remote-set=sign-verify=true \
    --remote-set=verification-ed25519-key="$(cat "$W/sign.public")" >"$LOGS/image-build.txt"
  t=$(awk -v a="$(date +%s.%N)" -v b="$s" 'BEGIN{printf "%.1f", a-b}')
  cat "$LOGS/image-build.txt" >&2
  log "image built in $t s: $(grep -o 'time:.*' "$LOGS/image-build.txt")"
  # The updates the machine will find, all published before its first power-on: v2 on
  # its ref, v3 (a failing health check) on another.
  echo v2 >"$W/tree/usr/share/oxtree-e2e/version"
  commit v2 "$REF"
  echo v3 >"$W/tree/usr/share/oxtree-e2e/version"
  cat >"$W/tree/usr/etc/oxtree/health.d/50-v3-broken" <<'EOF'
#!/bin/sh
echo "v3 is broken on purpose" >&2
exit 1
EOF
  chmod 0755 "$W/tree/usr/etc/oxtree/health.d/50-v3-broken"
  commit v3 e2e/broken
  ox --repo="$W/updates/repo" summary -u
  rm -f "$W/updates.img"
  mkfs.ext4 -q -L updates -d "$W/updates" "$W/updates.img" 1G
  cp "$OVMF_VARS" "$W/vars.fd"
}

# -------------------------------------------------------------------------- boots ----
ESP_AT=
esp_entries() { # the entry names on the image's ESP (read-only)
  [ -n "$ESP_AT" ] || ESP_AT=$(($(sfdisk --dump "$W/disk.img" |
    sed -n 's/^[^:]*1 : start= *\([0-9]*\),.*/\1/p') * 512))
  MTOOLS_SKIP_CHECK=1 mdir -b -i "$W/disk.img@@$ESP_AT" ::/loader/entries 2>/dev/null |
    sed 's|.*/||' | sort | tr '\n' ' '
}
short() { sed "s/$(cat "$W/v1.commit")/<v1>/g; s/$(cat "$W/v2.commit")/<v2>/g; s/$(cat "$W/v3.commit")/<v3>/g"; }
# boot NAME [cut]: power on; with `cut`, power off (kill QEMU) when the finalize reports it
# stopped in the ESP mirror.
boot() {
  local name=$1 mode=${2:-} logf=$LOGS/$1.log con=$LOGS/$1.console.log pid s
  log "boot $name: ESP entries before: $(esp_entries | short)"
  s=$(date +%s)
  rm -f "$W/qemu.pid"
  # Empty the logs first: the watch below must not find its string in a previous run's.
  : >"$con"
  : >"$logf"
  (timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -pidfile "$W/qemu.pid" -machine q35 -accel tcg -m "$MEM" -smp "$SMP" \
    -nodefaults -display none -monitor none -serial stdio -serial file:"$logf" -no-reboot \
    -nic none \
    -drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF_CODE" \
    -drive if=pflash,format=raw,unit=1,file="$W/vars.fd" \
    -drive if=none,id=d0,format=raw,file="$W/disk.img" -device virtio-blk-pci,drive=d0,bootindex=0 \
    -drive if=none,id=d1,format=raw,file="$W/updates.img",readonly=on -device virtio-blk-pci,drive=d1 \
    </dev/null >"$con" 2>&1 || true) 2>/dev/null &
  pid=$!
  if [ "$mode" = cut ]; then
    while kill -0 "$pid" 2>/dev/null; do
      if grep -aqF 'failpoint esp::entry: hanging' "$con" 2>/dev/null; then
        sleep 1
        kill -9 "$(cat "$W/qemu.pid")" || true
        log "  QEMU killed (power off) in the middle of the ESP mirror update"
        echo "E2E-POWER-CUT" >>"$logf"
        break
      fi
      sleep 0.5
    done
  fi
  { wait "$pid"; } 2>/dev/null || true
  log "  QEMU ran $(($(date +%s) - s)) s; guest $(grep -a -o 'E2E-BEGIN.*' "$logf" | tr -d '\r'); ESP entries after: $(esp_entries | short)"
  grep -a -q 'E2E-END' "$logf" || fail "$name: the driver did not finish (see $con)"
}
m() { tr -d '\r' <"$LOGS/$1.log" | sed -n "s/^E2E-$2 //p" | head -1; }
status_of() { tr -d '\r' <"$LOGS/$1.log" | sed -n "/^E2E-STATUS-$2/,/^E2E-\(STEP\|END\)/p"; }
csum() { cat "$W/$1.commit"; }
check() { local name=$1 what=$2; shift 2; if "$@"; then pass "$name: $what"; else fail "$name: $what"; fi; }
eq() { [ "$1" = "$2" ] || { echo "    got '$1', want '$2'" >&2; return 1; }; }
has() { case "$1" in *"$2"*) return 0 ;; *) echo "    '$1' lacks '$2'" >&2; return 1 ;; esac; }
booted_is() { status_of "$1" BEFORE | grep -q "^\* $OS $(csum "$2")\.[0-9]"; }
entry() { echo "ostree-$OS-$(csum "$1")"; }
sd_boot_checks() { # NAME VERSION
  check "$1" "booted $2" eq "$(m "$1" VERSION)" "$2"
  check "$1" "status marks $2 as booted" booted_is "$1" "$2"
  check "$1" "came through systemd-boot (LoaderInfo)" has "$(m "$1" LOADER-INFO)" "systemd-boot"
  check "$1" "the ESP is mounted at /efi" eq "$(m "$1" ESP-MOUNTED)" yes
  check "$1" "/usr is read-only" eq "$(m "$1" USR-RO)" yes
}

phase_boot() {
  local n
  n=1-v1-stage-v2-cut
  boot $n cut
  sd_boot_checks $n v1
  check $n "systemd-boot counted this boot (renamed +2 -> +1-1 before the kernel)" \
    eq "$(m $n BOOT-COUNT-PATH)" "\\loader\\entries\\$(entry v1).0+1-1.conf"
  check $n "bootctl sees systemd-boot" grep -aq 'Product: systemd-boot' "$LOGS/$n.log"
  check $n "health checks passed" eq "$(m $n HEALTH)" "success active"
  check $n "systemd-bless-boot ran after boot-complete.target" eq "$(m $n BLESS)" "success active"
  check $n "systemd-bless-boot marked v1 good on the ESP" has "$(m $n ENTRIES)" "$(entry v1).0.conf"
  check $n "upgrade --stage ran" has "$(m $n STEP)" "rc=0"
  check $n "the power was cut in the middle of the ESP mirror" grep -aq E2E-POWER-CUT "$LOGS/$n.log"
  log "  FAULT: ESP after the power cut: $(esp_entries | short)"

  n=2-v2-stage-v3
  boot $n
  sd_boot_checks $n v2
  log "  FAULT RESULT: after the power cut mid-mirror, systemd-boot booted $(m $n VERSION) from the half-updated ESP"
  check $n "the upgrade staged in boot 1 is booted on this power-on (counted: +1-1)" \
    eq "$(m $n BOOT-COUNT-PATH)" "\\loader\\entries\\$(entry v2).0+1-1.conf"
  check $n "systemd-bless-boot marked v2 good" has "$(m $n ENTRIES)" "$(entry v2).0.conf"
  check $n "v3 staged" has "$(m $n STEP)" "stage-v3 rc=0"

  for n in 3-v3-try1 4-v3-try2; do
    boot $n
    sd_boot_checks $n v3
    check $n "the health check failed" eq "$(m $n HEALTH)" "exit-code failed"
    check $n "boot-complete.target was not reached" has "$(m $n BOOT-COMPLETE-TARGET)" "inactive"
  done
  check 3-v3-try1 "systemd-boot counted try 1 (+2 -> +1-1)" \
    eq "$(m 3-v3-try1 BOOT-COUNT-PATH)" "\\loader\\entries\\$(entry v3).0+1-1.conf"
  check 4-v3-try2 "systemd-boot counted try 2 (+1-1 -> +0-2)" \
    eq "$(m 4-v3-try2 BOOT-COUNT-PATH)" "\\loader\\entries\\$(entry v3).0+0-2.conf"
  # On its last try the entry is +0-2: systemd-boot's "bad" state, which status reports.
  check 4-v3-try2 "status: v3 out of tries (on its last one)" \
    sh -c "tr -d '\r' <'$LOGS/4-v3-try2.log' | grep -q 'Boot: FAILED (no good boot in 2 tries)'"
  check 4-v3-try2 "the ESP entry of v3 is out of tries (+0-2), renamed by systemd-boot" \
    has "$(esp_entries)" "$(entry v3).0+0-2.conf"

  n=5-fallback-v2
  boot $n
  sd_boot_checks $n v2
  check $n "systemd-boot chose v2 by itself (v3 out of tries, sorted last)" \
    has "$(m $n LOADER-ENTRY)" "$(entry v2).0.conf"
  check $n "v2 is the default again (rollback --if-failed at boot)" \
    sh -c "tr -d '\r' <'$LOGS/$n.log' | sed -n '/^E2E-STATUS-AFTER/,\$p' | grep -E '^[* ] $OS ' | head -1 | grep -q '^\* $OS $(csum v2)'"
  check $n "status reports v3 FAILED" \
    sh -c "tr -d '\r' <'$LOGS/$n.log' | sed -n '/^E2E-STATUS-AFTER/,\$p' | grep -A3 '$(csum v3)' | grep -q 'Boot: FAILED'"
  check $n "v3's entry keeps its spent counter" has "$(esp_entries)" "$(entry v3).0+0-2.conf"
}

main() {
  mkdir -p "$W" "$LOGS"
  : >"$LOGS/summary.txt"
  W=$(cd "$W" && pwd)
  LOGS=$(cd "$LOGS" && pwd)
  [ -x "$OXTREE" ] || { echo "no oxtree binary at $OXTREE (cargo build --release)" >&2; exit 1; }
  [ -x "$OXTREE_GUEST" ] || { echo "no oxtree binary for the guest at $OXTREE_GUEST (cargo build --release -p oxtree-cli --features failpoints --target-dir target/failpoints)" >&2; exit 1; }
  local p
  for p in ${E2E_PHASES:-host rootfs tree image boot}; do
    log "== $p"
    "phase_$p"
  done
  log "serial logs: $LOGS"
  if [ "$FAILS" -gt 0 ]; then
    log "OVMF E2E: $FAILS check(s) FAILED"
    exit 1
  fi
  log "OVMF E2E: all checks passed in $(($(date +%s) - T0)) s"
}
main "$@"
