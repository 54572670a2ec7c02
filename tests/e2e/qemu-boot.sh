#!/usr/bin/env bash
# tests/e2e/qemu-boot.sh — oxtree boots a real Debian in QEMU, upgrades it, and rolls back.
#
# Builds a bookworm image with oxtree alone (host: commit, init-fs, os-init, deploy; guest:
# oxtree as the initramfs root switcher, `admin upgrade --stage`, the finalize, health-check
# and /var units, status, rollback), boots it under QEMU (TCG; no KVM, loop devices or
# mounts: mkfs.ext4 -d builds the disk, debugfs reads it) and asserts on serial-console
# markers printed by a small driver service in the guest. The host plays the bootloader.
#
#   boot 1  v1 (default)    /usr read-only, v1 marked good; edit /etc, write /var; stage v2;
#                           power cut (QEMU killed) in the middle of the finalize at shutdown
#   boot 2  v1 again        the cut upgrade left the old default in force; from here on the
#                           update agent runs (oxtree-agent.service, strategy immediate): it
#                           finds v2 in the signed graph on the update disk, stages it and
#                           reboots the machine by itself
#   boot 3  v2              /etc edit and /var file survived, health checks pass, marked
#                           good, the agent verifies v2; the update disk now carries v3 (and
#                           the graph offers it): the agent stages it and reboots
#   boot 4,5 v3             its health check fails: not marked good, the agent does not
#                           start; tries run out
#   boot 6  v2              chosen by the bootloader with no manual step; status shows v3
#                           FAILED; the agent reports v3 rolled back and does not stage it
#                           again; `oxtree admin rollback`
#   boot 7  v1              the rollback is the default
#   cross-check A: a sysroot deployed by oxtree boots with Debian's ostree-prepare-root
#   cross-check B: a sysroot deployed by real ostree boots with oxtree's root switcher
#   C: a broken ostree= argument: a clear message and the initramfs rescue shell
#
# The bootloader (function `pick_entry`) follows systemd-boot's boot counting: an entry
# file named NAME+LEFT[-DONE].conf is being tried; each boot of it renames it to
# NAME+(LEFT-1)-(DONE+1).conf before starting the kernel; one with LEFT=0 is "bad" and is
# sorted after all the others, so the newest good entry boots instead. `oxtree admin
# boot-complete` (after the health checks pass) drops the counter from the name.
#
# The host side runs the shipped binary (OXTREE); the guest gets a release build with the
# `failpoints` feature (OXTREE_GUEST), the only kind that can be stopped at a deploy step
# (FAILPOINTS=deploy::entries=return(hang)) for the power cut.
# Env: OXTREE (binary; default target/release/oxtree), OXTREE_GUEST (default
# target/failpoints/release/oxtree: cargo build --release -p oxtree-cli --features failpoints
# --target-dir target/failpoints), E2E_WORK (target/e2e), E2E_LOGS
# (serial logs and the summary; target/e2e-logs), E2E_CACHE (debootstrap cache;
# /var/cache/oxtree-e2e), BOOT_TIMEOUT (300 s per boot), SMP, MEM, MIRROR.
# Needs root (debootstrap, chroot, root-owned files). Packages: qemu-system-x86
# debootstrap e2fsprogs ostree (the oracle, for cross-check B).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OXTREE=${OXTREE:-$ROOT/target/release/oxtree}
OXTREE_GUEST=${OXTREE_GUEST:-$ROOT/target/failpoints/release/oxtree}
W=${E2E_WORK:-$ROOT/target/e2e}
LOGS=${E2E_LOGS:-$ROOT/target/e2e-logs}
CACHE=${E2E_CACHE:-/var/cache/oxtree-e2e}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
SMP=${SMP:-2}
MEM=${MEM:-2048}
OS=debian
REF=debian/bookworm/x86_64
TRIES=2
INCLUDE=linux-image-amd64,systemd-sysv,udev,kmod,initramfs-tools
UPDATES_URL=file:///run/oxtree-updates/repo

T0=$(date +%s)
log() { echo "[e2e $(($(date +%s) - T0))s] $*" | tee -a "$LOGS/summary.txt" >&2; }
FAILS=0
pass() { log "PASS $*"; }
fail() { log "FAIL $*"; FAILS=$((FAILS + 1)); }
ox() { "$OXTREE" "$@"; }

# find_mirror, phase_rootfs (the debootstrap cache shared with tests/e2e/ovmf-boot.sh).
. "$ROOT/tests/e2e/lib.sh"

# -------------------------------------------------------------------------- tree ----
write_driver() {
  local t=$1
  mkdir -p "$t/usr/libexec" "$t/usr/share/oxtree-e2e"
  echo v1 >"$t/usr/share/oxtree-e2e/version"
  cat >"$t/usr/libexec/oxtree-e2e" <<'EOF'
#!/bin/sh
# e2e driver: reports this boot on the second serial port (the first is the console, full
# of boot messages), runs the step named by e2e.step= on the kernel command line, powers off.
exec >/dev/ttyS1 2>&1
up() { cut -d' ' -f1 /proc/uptime; }
yn() { if "$@"; then echo yes; else echo no; fi; }
echo "E2E-BEGIN uptime=$(up)"
echo "E2E-CMDLINE $(cat /proc/cmdline)"
echo "E2E-VERSION $(cat /usr/share/oxtree-e2e/version)"
echo "E2E-BOOTED $(yn test -e /run/ostree-booted)"
echo "E2E-USR-RO $(yn sh -c '! touch /usr/.e2e-write-test 2>/dev/null')"
echo "E2E-VAR-MOUNTED $(yn mountpoint -q /var)"
echo "E2E-SYSROOT-MOUNTED $(yn mountpoint -q /sysroot)"
echo "E2E-ETC $(cat /etc/e2e.conf)"
echo "E2E-VARFILE $(cat /var/lib/e2e/persist 2>/dev/null || echo none)"
echo "E2E-HEALTH $(systemctl show -p Result --value oxtree-boot-complete.service) $(systemctl show -p ActiveState --value oxtree-boot-complete.service)"
echo "E2E-MOUNTS"; grep -E ' (/|/sysroot|/var|/etc|/usr|/boot) ' /proc/mounts
echo "E2E-STATUS-BEFORE"; oxtree admin status; echo "E2E-STATUS-RC $?"
step=$(sed -n 's/.*e2e\.step=\([^ ]*\).*/\1/p' /proc/cmdline)
updates() { mountpoint -q /run/oxtree-updates || { mkdir -p /run/oxtree-updates && mount -o ro /dev/vdb /run/oxtree-updates; }; }
# On the boots the host gives e2e.agent=, the update agent runs after this driver (its
# drop-in): the update disk must be there for it.
agent=$(sed -n 's/.*e2e\.agent=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -z "$agent" ] || updates
rc=0
case "$step" in
  edit-upgrade-cut)
    # Local state that must survive upgrades: an /etc edit and a file in /var.
    echo "setting=edited-in-v1" >/etc/e2e.conf
    mkdir -p /var/lib/e2e && echo "written-in-v1" >/var/lib/e2e/persist
    # Make the finalize at shutdown stop half-way, so the host can cut the power there.
    mkdir -p /run/systemd/system/oxtree-finalize-staged.service.d
    printf '[Service]\nEnvironment=FAILPOINTS=deploy::entries=return(hang)\n' \
      >/run/systemd/system/oxtree-finalize-staged.service.d/e2e-hang.conf
    systemctl daemon-reload
    updates && oxtree admin upgrade --stage --retain-rollback || rc=$? ;;
  upgrade) updates && oxtree admin upgrade --stage --retain-rollback || rc=$? ;;
  fsck)
    oxtree fsck --repo=/ostree/repo; echo "E2E-FSCK rc=$?" ;;
  rollback) oxtree admin rollback || rc=$? ;;
  none | "") ;;
  *) echo "unknown step $step"; rc=2 ;;
esac
echo "E2E-STEP $step rc=$rc uptime=$(up)"
echo "E2E-STATUS-AFTER"; oxtree admin status
sync
echo "E2E-END uptime=$(up)"
# With the agent on, its reporter (oxtree-e2e-agent.service) ends the boot.
[ -n "$agent" ] || systemctl poweroff --no-block
EOF
  chmod 0755 "$t/usr/libexec/oxtree-e2e"
  write_agent "$t"
  cat >"$t/usr/lib/systemd/system/oxtree-e2e.service" <<'EOF'
[Unit]
Description=oxtree e2e test driver
After=local-fs.target systemd-tmpfiles-setup.service oxtree-boot-complete.service
[Service]
Type=oneshot
ExecStart=/usr/libexec/oxtree-e2e
[Install]
WantedBy=multi-user.target
EOF
  ln -sf /usr/lib/systemd/system/oxtree-e2e.service "$t/etc/systemd/system/multi-user.target.wants/"
  ln -sf /usr/lib/systemd/system/multi-user.target "$t/etc/systemd/system/default.target"
  # A getty on ttyS0 would vhangup the console and swallow the driver's output.
  ln -sf /dev/null "$t/etc/systemd/system/serial-getty@ttyS0.service"
  ln -sf /dev/null "$t/etc/systemd/system/getty.target"
  echo oxtree-e2e >"$t/etc/hostname"
  : >"$t/etc/machine-id"
  echo "setting=default" >"$t/etc/e2e.conf"
  cat >"$t/etc/oxtree/health.d/10-booted" <<'EOF'
#!/bin/sh
# A good boot runs a deployment.
test -e /run/ostree-booted
EOF
  chmod 0755 "$t/etc/oxtree/health.d/10-booted"
}

# The update agent, as shipped (oxtree-agent.service: after the health checks passed),
# enabled; in this test it runs on the boots where the host puts e2e.agent=WANT on the
# kernel command line, after the driver (which mounts the update disk). Its reporter
# prints the agent's state on the second serial port until WANT (STATE:VERSION, or
# not-running), then leaves the reboot to the agent or powers off.
write_agent() {
  local t=$1
  ln -sf /usr/lib/systemd/system/oxtree-agent.service "$t/etc/systemd/system/multi-user.target.wants/"
  mkdir -p "$t/etc/systemd/system/oxtree-agent.service.d" "$t/etc/oxtree/agent.d"
  cat >"$t/etc/systemd/system/oxtree-agent.service.d/50-e2e.conf" <<'EOF'
[Unit]
ConditionKernelCommandLine=e2e.agent
After=oxtree-e2e.service
EOF
  # The graph's URL is the default, {remote url}/graph/{stream}.json (on the update disk).
  cat >"$t/etc/oxtree/agent.d/50-e2e.toml" <<'EOF'
[agent]
steady_interval_secs = 10
retry_secs = 5
[identity]
node_uuid = "e2e-vm"
[updates]
strategy = "immediate"
[preflight]
min_free_boot_mib = 1
min_free_repo_mib = 16
# The test image has no D-Bus (debootstrap minbase), so no logind to ask about inhibitor
# locks or logged-in users: the agent would keep that gate closed.
[reboot]
respect_inhibitors = false
warn_users = false
# The journal flushed and two seconds for the log copier (oxtree-e2e-agent-log.service)
# before the reboot: its last lines ("available -> staged", "rebooting into …") were lost
# once when the reboot came first.
command = ["/bin/sh", "-c", "journalctl --sync; sleep 2; exec systemctl reboot"]
EOF
  cat >"$t/usr/libexec/oxtree-e2e-agent" <<'EOF'
#!/bin/sh
exec >/dev/ttyS1 2>&1
up() { cut -d' ' -f1 /proc/uptime; }
want=$(sed -n 's/.*e2e\.agent=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "E2E-AGENT-WANT $want"
echo "E2E-AGENT-UNIT $(systemctl is-active oxtree-agent.service)"
# STATE:VERSION from `oxtree agent status --json` (VERSION: the update it is about).
now() {
  j=$(oxtree agent status --json 2>/dev/null | tr -d ' \n')
  st=$(echo "$j" | sed -n 's/.*"state":"\([a-z-]*\)".*/\1/p')
  v=$(echo "$j" | sed -n 's/.*"detail":{[^}]*"target":{[^}]*"version":"\([^"]*\)".*/\1/p')
  echo "$st:$v"
}
if [ "$want" != not-running ] && systemctl is-active -q oxtree-agent.service; then
  # (the agent's log reaches the port through oxtree-e2e-agent-log.service)
  last= cur= i=0
  while [ $i -lt 100 ]; do
    cur=$(now)
    [ "$cur" = "$last" ] || echo "E2E-AGENT-STATE $cur uptime=$(up)"
    last=$cur
    [ "$cur" = "$want" ] && break
    sleep 2
    i=$((i + 1))
  done
  [ "$cur" = "$want" ] || echo "E2E-AGENT-TIMEOUT"
  case "$want" in rolled-back:*)
    # Two more checks of the graph (10 s apart): the rolled-back release stays refused.
    sleep 25
    echo "E2E-AGENT-LATER $(now)" ;;
  esac
  echo "E2E-AGENT-STATUS"; oxtree agent status
  echo "E2E-AGENT-JSON $(oxtree agent status --json | tr -d '\n')"
  echo "E2E-AGENT-DEPLOYMENTS"; oxtree admin status
fi
echo "E2E-AGENT-END uptime=$(up)"
case "$want" in
  # The agent reboots the machine (a guest reboot ends QEMU: -no-reboot).
  rebooting:*) sleep 120; echo "E2E-AGENT-NO-REBOOT" ;;
esac
systemctl poweroff --no-block
EOF
  chmod 0755 "$t/usr/libexec/oxtree-e2e-agent"
  cat >"$t/usr/lib/systemd/system/oxtree-e2e-agent.service" <<'EOF'
[Unit]
Description=oxtree e2e: report the update agent
ConditionKernelCommandLine=e2e.agent
After=oxtree-e2e.service oxtree-agent.service
[Service]
Type=oneshot
ExecStart=/usr/libexec/oxtree-e2e-agent
[Install]
WantedBy=multi-user.target
EOF
  ln -sf /usr/lib/systemd/system/oxtree-e2e-agent.service "$t/etc/systemd/system/multi-user.target.wants/"
  # The agent's log (its state transitions) on the second port, as it happens. A unit of
  # its own, started before the agent and so stopped after it when the agent reboots the
  # machine: its last line ("rebooting into ...") is copied before the follower stops
  # (a follower inside the reporter, which is stopped first, lost it once in CI).
  cat >"$t/usr/lib/systemd/system/oxtree-e2e-agent-log.service" <<'EOF'
[Unit]
Description=oxtree e2e: copy the update agent's log to the second serial port
ConditionKernelCommandLine=e2e.agent
After=systemd-journald.service
Before=oxtree-agent.service
[Service]
ExecStart=/bin/sh -c "journalctl -b -f -n all -o cat -u oxtree-agent.service | sed -u 's/^/E2E-AGENT-LOG /' >/dev/ttyS1"
[Install]
WantedBy=multi-user.target
EOF
  ln -sf /usr/lib/systemd/system/oxtree-e2e-agent-log.service "$t/etc/systemd/system/multi-user.target.wants/"
}

phase_tree() {
  local t=$W/tree kver
  rm -rf "$t"
  cp -a "$CACHE/rootfs" "$t"
  kver=$(ls "$t/usr/lib/modules" | head -1)
  rm -rf "$t"/var/cache/apt/archives/*.deb "$t"/var/lib/apt/lists/*
  # Kernel modules for hardware a VM never has: out (smaller commit and image).
  (cd "$t/usr/lib/modules/$kver/kernel" &&
    rm -rf drivers/gpu drivers/net/wireless drivers/media drivers/infiniband \
      drivers/staging sound net/wireless net/mac80211 drivers/bluetooth \
      drivers/iio drivers/hid drivers/isdn drivers/scsi/lpfc drivers/scsi/qla2xxx)
  chroot "$t" depmod "$kver"
  "$ROOT/dist/install.sh" "$t" "$OXTREE_GUEST"
  # A small initramfs: only the modules a virtio VM needs.
  sed -i 's/^MODULES=.*/MODULES=list/' "$t/etc/initramfs-tools/initramfs.conf"
  printf '%s\n' virtio_pci virtio_blk ext4 >>"$t/etc/initramfs-tools/modules"
  chroot "$t" update-initramfs -u -k "$kver" >"$LOGS/update-initramfs.log" 2>&1 ||
    { cat "$LOGS/update-initramfs.log"; exit 1; }
  if ! chroot "$t" lsinitramfs "/boot/initrd.img-$kver" >"$W/initramfs.list" ||
    ! grep -q 'usr/bin/oxtree$' "$W/initramfs.list"; then
    fail "the initramfs does not carry oxtree"; exit 1
  fi
  # Cross-check A's initramfs: Debian's ostree-prepare-root with the same two-file hook.
  mv "$t/usr/share/initramfs-tools/hooks/oxtree" "$W/hook.save"
  mv "$t/usr/share/initramfs-tools/scripts/local-bottom/oxtree" "$W/script.save"
  rm "$t/usr/lib/ostree/ostree-prepare-root"
  install -m 0755 "$CACHE/ostree-boot/usr/lib/ostree/ostree-prepare-root" "$t/usr/lib/ostree/"
  cat >"$t/etc/initramfs-tools/hooks/ostree" <<'EOF'
#!/bin/sh
case "$1" in prereqs) echo ""; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
copy_exec /usr/lib/ostree/ostree-prepare-root /usr/lib/ostree/ostree-prepare-root
EOF
  mkdir -p "$t/etc/initramfs-tools/scripts/local-bottom"
  cat >"$t/etc/initramfs-tools/scripts/local-bottom/ostree" <<'EOF'
#!/bin/sh
case "$1" in prereqs) echo ""; exit 0 ;; esac
case " $(cat /proc/cmdline) " in *" ostree="*) ;; *) exit 0 ;; esac
echo "running Debian's ostree-prepare-root ${rootmnt}"
/usr/lib/ostree/ostree-prepare-root "${rootmnt}"
EOF
  chmod 0755 "$t/etc/initramfs-tools/hooks/ostree" "$t/etc/initramfs-tools/scripts/local-bottom/ostree"
  chroot "$t" mkinitramfs -o /tmp/initrd-ostree.img "$kver" >>"$LOGS/update-initramfs.log" 2>&1
  mv "$t/tmp/initrd-ostree.img" "$W/initrd-ostree.img"
  rm -f "$t/etc/initramfs-tools/hooks/ostree" "$t/etc/initramfs-tools/scripts/local-bottom/ostree"
  rm "$t/usr/lib/ostree/ostree-prepare-root"
  ln -s ../../bin/oxtree "$t/usr/lib/ostree/ostree-prepare-root"
  mv "$W/hook.save" "$t/usr/share/initramfs-tools/hooks/oxtree"
  mv "$W/script.save" "$t/usr/share/initramfs-tools/scripts/local-bottom/oxtree"
  rm -f "$t"/boot/*.dpkg-bak "$t"/boot/*.new

  write_driver "$t"

  # The OSTree layout (ostree's "Adapting existing mainstream distributions").
  mv "$t/boot/vmlinuz-$kver" "$t/usr/lib/modules/$kver/vmlinuz"
  mv "$t/boot/initrd.img-$kver" "$t/usr/lib/modules/$kver/initramfs.img"
  rm -rf "$t"/boot/* "$t"/vmlinuz* "$t"/initrd.img*
  mv "$t/etc" "$t/usr/etc"
  rm -rf "$t"/dev/* "$t"/tmp/* "$t"/run/* "$t"/proc/* "$t"/sys/*
  # /var is the stateroot's: shipped empty, populated by tmpfiles.
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
  echo "$kver" >"$W/kver"
  log "tree ready: $(du -sh "$t" | cut -f1), kernel $kver"
}

# ------------------------------------------------------------------------ commits ----
# The update server signs its commits (ed25519); the machine's remote verifies them.
make_key() {
  openssl genpkey -algorithm ed25519 -out "$W/sign.pem" 2>/dev/null
  { openssl pkey -in "$W/sign.pem" -outform DER | tail -c 32
    openssl pkey -in "$W/sign.pem" -pubout -outform DER | tail -c 32; } | base64 -w0 >"$W/sign.secret"
  openssl pkey -in "$W/sign.pem" -pubout -outform DER | tail -c 32 | base64 -w0 >"$W/sign.public"
}
commit() { # NAME BRANCH: commit the tree as version NAME, signed
  local s
  s=$(date +%s.%N)
  ox --repo="$W/updates/repo" commit -b "$2" -s "$1" --add-metadata-string=version="$1" \
    --sign="$(cat "$W/sign.secret")" --tree=dir="$W/tree" >"$W/$1.commit"
  log "commit $1: $(cut -c1-12 "$W/$1.commit") in $(awk -v a="$(date +%s.%N)" -v b="$s" 'BEGIN{printf "%.1f", a-b}') s"
}
# The update graph the agent reads ({remote url}/graph/{stream}.json), signed with the
# commits' key: graph_release NAME adds the ref's commit (NAME) with a rollout to the whole
# fleet from the start, so every older release gets an edge to it.
GRAPH=graph/$REF.json
graph_release() {
  local g=$W/updates/repo/$GRAPH
  if [ ! -f "$g" ]; then
    mkdir -p "$(dirname "$g")"
    ox graph init "$g" --stream "$REF" >/dev/null
  fi
  ox --repo="$W/updates/repo" graph add "$g" "$REF" >/dev/null
  [ "$1" = v1 ] || ox graph rollout "$g" "$1" --start=@0 --start-fraction=1.0 >/dev/null
  ox graph sign "$g" "$(cat "$W/sign.secret")" >/dev/null
}
phase_commit() {
  local t=$W/tree kver
  kver=$(cat "$W/kver")
  rm -rf "$W/updates"
  mkdir -p "$W/updates"
  ox --repo="$W/updates/repo" init --mode=archive
  make_key
  commit v1 "$REF"
  graph_release v1
  # Cross-check A: v1 with Debian's ostree-prepare-root in its initramfs.
  cp "$t/usr/lib/modules/$kver/initramfs.img" "$W/initrd-oxtree.img"
  cp "$W/initrd-ostree.img" "$t/usr/lib/modules/$kver/initramfs.img"
  commit v1-ostree-initramfs e2e/ostree-initramfs
  cp "$W/initrd-oxtree.img" "$t/usr/lib/modules/$kver/initramfs.img"
  # v2: a new version of the OS.
  echo v2 >"$t/usr/share/oxtree-e2e/version"
  echo "new in v2" >"$t/usr/share/oxtree-e2e/v2-only"
  commit v2 "$REF"
  graph_release v2
  # The update server also offers it as a static delta from v1 (its parent).
  ox --repo="$W/updates/repo" static-delta generate --to="$(cat "$W/v2.commit")" >/dev/null
  ox --repo="$W/updates/repo" summary -u
  ox --repo="$W/updates/repo" fsck -q >/dev/null
}
# v3 carries a health check that fails: it boots, but is never marked good.
publish_v3() {
  local t=$W/tree
  echo v3 >"$t/usr/share/oxtree-e2e/version"
  cat >"$t/usr/etc/oxtree/health.d/50-v3-broken" <<'EOF'
#!/bin/sh
echo "v3 is broken on purpose" >&2
exit 1
EOF
  chmod 0755 "$t/usr/etc/oxtree/health.d/50-v3-broken"
  commit v3 "$REF"
  graph_release v3
  ox --repo="$W/updates/repo" static-delta generate --to="$(cat "$W/v3.commit")" >/dev/null
  ox --repo="$W/updates/repo" summary -u
  make_updates_disk
}
make_updates_disk() {
  rm -f "$W/updates.img"
  mkfs.ext4 -q -L updates -d "$W/updates" "$W/updates.img" 1G
}

# ----------------------------------------------------------------------- sysroots ----
kargs=(--karg=root=LABEL=root --karg=rw --karg=console=ttyS0)
make_sysroot() { # DIR COMMIT: an oxtree-made sysroot with COMMIT deployed
  local s=$1 c
  c=$(cat "$W/$2.commit")
  [ -d "$s" ] && chattr -R -i "$s" 2>/dev/null || true
  rm -rf "$s"
  mkdir -p "$s"
  ox admin init-fs "$s" >/dev/null
  ox admin os-init --sysroot="$s" "$OS" >/dev/null
  ox --repo="$s/ostree/repo" remote add --no-gpg-verify --set=sign-verify=true \
    --set=verification-ed25519-key="$(cat "$W/sign.public")" origin "$UPDATES_URL"
  ox --repo="$s/ostree/repo" pull-local --remote=origin "$W/updates/repo" "$c" >/dev/null
  ox --repo="$s/ostree/repo" refs --create="origin:$REF" "$c"
}
phase_sysroot() {
  # The main scenario's sysroot, with boot counting on.
  make_sysroot "$W/sysroot" v1
  printf '\n[sysroot]\nboot-counting-tries=%s\n' "$TRIES" >>"$W/sysroot/ostree/repo/config"
  ox admin deploy --sysroot="$W/sysroot" --os="$OS" "${kargs[@]}" "origin:$REF"
  # Cross-check A: deployed by oxtree, booted by Debian's ostree-prepare-root.
  make_sysroot "$W/sysroot-a" v1-ostree-initramfs
  ox admin deploy --sysroot="$W/sysroot-a" --os="$OS" "${kargs[@]}" "$(cat "$W/v1-ostree-initramfs.commit")"
  # Cross-check B: deployed by real ostree, booted by oxtree's root switcher.
  local s=$W/sysroot-b
  [ -d "$s" ] && chattr -R -i "$s" 2>/dev/null || true
  rm -rf "$s"
  mkdir -p "$s"
  ostree admin init-fs "$s"
  ostree admin --sysroot="$s" os-init "$OS"
  ostree --repo="$s/ostree/repo" pull-local "$W/updates/repo" "$(cat "$W/v1.commit")" >/dev/null
  ostree admin --sysroot="$s" deploy --os="$OS" "${kargs[@]}" "$(cat "$W/v1.commit")" 2>&1 |
    grep -v Relabeling || true
  ostree admin --sysroot="$s" status | grep -q "$(cat "$W/v1.commit")" ||
    { fail "real ostree did not deploy v1"; exit 1; }
}
phase_image() {
  local n
  for n in sysroot sysroot-a sysroot-b; do
    rm -f "$W/$n.img"
    mkfs.ext4 -q -L root -d "$W/$n" "$W/$n.img" 3G
  done
  # Both tools mark deployments immutable; clear that on the host copies, or `cargo clean`
  # (and rm -rf target) fails on them. The images keep what mkfs copied.
  chattr -R -i "$W/sysroot" "$W/sysroot-a" "$W/sysroot-b" 2>/dev/null || true
  make_updates_disk
  log "images built"
}

# --------------------------------------------------------------------- bootloader ----
# The target of /boot/loader (loader.0 or loader.1) in IMG.
loader_dir() { debugfs -R "stat /boot/loader" "$1" 2>/dev/null | sed -n 's/.*Fast link dest: "\(.*\)".*/\1/p'; }
# Entry file names with their sort key: BAD VERSION NAME (BAD=1 for LEFT=0).
list_entries() {
  local img=$1 dir f v stem bad
  dir=$(loader_dir "$img")
  for f in $(debugfs -R "ls -p /boot/$dir/entries" "$img" 2>/dev/null | awk -F/ '$6 ~ /\.conf$/ {print $6}'); do
    v=$(debugfs -R "cat /boot/$dir/entries/$f" "$img" 2>/dev/null | awk '/^version /{print $2}')
    stem=${f%.conf}
    bad=0
    [[ $stem =~ \+0(-[0-9]+)?$ ]] && bad=1
    echo "$bad $v $f"
  done | sort -k1,1n -k2,2nr
}
# systemd-boot: boot the first entry (good ones by version, bad ones last); if it is being
# counted (+LEFT[-DONE], LEFT>0), count this try by renaming it first. Prints the entry.
pick_entry() {
  local img=$1 dir f stem base left done_ new
  dir=$(loader_dir "$img")
  f=$(list_entries "$img" | head -1 | cut -d' ' -f3)
  [ -n "$f" ] || return 1
  stem=${f%.conf}
  if [[ $stem =~ ^(.*)\+([0-9]+)(-([0-9]+))?$ ]]; then
    base=${BASH_REMATCH[1]} left=${BASH_REMATCH[2]} done_=${BASH_REMATCH[4]:-0}
    if [ "$left" -gt 0 ]; then
      new="$base+$((left - 1))-$((done_ + 1)).conf"
      # ln + unlink: a rename that leaves the link count as it was.
      printf 'ln /boot/%s/entries/%s /boot/%s/entries/%s\nunlink /boot/%s/entries/%s\n' \
        "$dir" "$f" "$dir" "$new" "$dir" "$f" >"$W/debugfs.cmd"
      debugfs -w -f "$W/debugfs.cmd" "$img" >/dev/null 2>&1
      log "  bootloader: $f -> $new (one try used)"
      f=$new
    fi
  fi
  echo "/boot/$dir/entries/$f"
}
field() { debugfs -R "cat $2" "$1" 2>/dev/null | sed -n "s/^$3 //p"; }

# -------------------------------------------------------------------------- boots ----
# boot NAME IMG STEP [MODE [AGENT]]: boot the default entry of IMG (AGENT: what the update
# agent must reach on this boot, e2e.agent= for the driver). Serial logs: the console in
# $LOGS/NAME.console.log, the driver's markers in $LOGS/NAME.log. MODE:
#   cut      kill QEMU (a hard power-off) as soon as the finalize reports it is half-way;
#   bad-arg  boot with an ostree= that names no deployment, on a throw-away snapshot of
#            IMG, and stop once the initramfs has dropped to its rescue shell.
boot() {
  local name=$1 img=$2 step=$3 mode=${4:-} agent=${5:-} e opts logf=$LOGS/$1.log con=$LOGS/$1.console.log
  local pid s until= extra=()
  e=$(pick_entry "$img") || { fail "$name: no boot entry"; return 1; }
  opts=$(field "$img" "$e" options)
  debugfs -R "dump /boot$(field "$img" "$e" linux) $W/vmlinuz" "$img" 2>/dev/null
  debugfs -R "dump /boot$(field "$img" "$e" initrd) $W/initrd" "$img" 2>/dev/null
  case "$mode" in
    cut) until='failpoint deploy::entries: hanging' ;;
    bad-arg)
      until='(initramfs)'
      extra=(-snapshot)
      opts=$(echo "$opts" | sed 's|ostree=[^ ]*|ostree=/ostree/boot.1/debian/0000/9|') ;;
  esac
  log "boot $name: $(basename "$e") ($(field "$img" "$e" title)) step=$step${mode:+ mode=$mode}${agent:+ agent=$agent}"
  s=$(date +%s)
  # (in a subshell that outlives QEMU: a hard kill is reported here, not by job control)
  rm -f "$W/qemu.pid"
  # Empty the logs first: the watch below must not find its string in a previous run's.
  : >"$con"
  : >"$logf"
  (timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -pidfile "$W/qemu.pid" -accel tcg -m "$MEM" -smp "$SMP" \
    -display none -monitor none -serial stdio -serial file:"$logf" \
    -no-reboot -kernel "$W/vmlinuz" -initrd "$W/initrd" \
    -append "$opts console=ttyS0 e2e.step=$step${agent:+ e2e.agent=$agent}" \
    -drive file="$img",format=raw,if=virtio \
    -drive file="$W/updates.img",format=raw,if=virtio,readonly=on \
    "${extra[@]}" -nic none </dev/null >"$con" 2>&1 || true) 2>/dev/null &
  pid=$!
  if [ -n "$until" ]; then
    while kill -0 "$pid" 2>/dev/null; do
      if grep -aqF "$until" "$con" 2>/dev/null; then
        sleep 1
        kill -9 "$(cat "$W/qemu.pid")" || true
        log "  QEMU killed (power off) on seeing '$until'"
        echo "E2E-POWER-CUT" >>"$logf"
        break
      fi
      sleep 0.5
    done
  fi
  { wait "$pid"; } 2>/dev/null || true
  log "  QEMU ran $(($(date +%s) - s)) s; guest $(grep -a -o 'E2E-BEGIN.*' "$logf" | tr -d '\r')"
  grep -a -q 'E2E-END' "$logf" || [ -n "$mode" ] ||
    fail "$name: the driver did not finish (timeout or early failure; see $con)"
}
# The value of marker KEY in boot NAME's log.
m() { tr -d '\r' <"$LOGS/$1.log" | sed -n "s/^E2E-$2 //p" | head -1; }
# The status block (before/after the step) of boot NAME.
status_of() { tr -d '\r' <"$LOGS/$1.log" | sed -n "/^E2E-STATUS-$2/,/^E2E-\(STATUS-RC\|END\)/p"; }
csum() { cat "$W/$1.commit"; }
check() { # NAME DESCRIPTION COMMAND...
  local name=$1 what=$2
  shift 2
  if "$@"; then pass "$name: $what"; else fail "$name: $what"; fi
}
eq() { [ "$1" = "$2" ] || { echo "    got '$1', want '$2'" >&2; return 1; }; }
booted_is() { status_of "$1" BEFORE | grep -q "^\* $OS $(csum "$2")\.[0-9]"; }
# What `admin status` (before the step) of boot NAME says about commit COMMIT-NAME.
lists() { status_of "$1" BEFORE | grep -q "$(csum "$2")"; }
default_is() { # the first deployment listed is COMMIT-NAME, and it is the booted one
  local st
  st=$(status_of "$1" BEFORE | grep -E "^[* ] $OS ")
  [[ ${st%%$'\n'*} == "* $OS $(csum "$2")."* ]]
}
failed_in() { status_of "$1" BEFORE | grep -A2 "$(csum "$2")" | grep -q 'Boot: FAILED'; }
common_checks() { # NAME VERSION [COMMIT-NAME]: booted VERSION (COMMIT-NAME's commit)
  check "$1" "booted $2 (version file)" eq "$(m "$1" VERSION)" "$2"
  check "$1" "status marks ${3:-$2} as booted" booted_is "$1" "${3:-$2}"
  check "$1" "/run/ostree-booted exists" eq "$(m "$1" BOOTED)" yes
  check "$1" "/usr is read-only" eq "$(m "$1" USR-RO)" yes
  check "$1" "/var is the stateroot's (a mount)" eq "$(m "$1" VAR-MOUNTED)" yes
  check "$1" "the physical root is at /sysroot" eq "$(m "$1" SYSROOT-MOUNTED)" yes
}
step_ok() { m "$1" STEP | grep -q 'rc=0'; }
not_active() { [ -n "$1" ] && [ "$1" != active ] || { echo "    agent unit: '$1'" >&2; return 1; }; }
# agent_checks NAME VERSION: the agent staged VERSION on its own and rebooted the machine
# (read in its log: the reboot comes faster than its reporter polls the state).
agent_checks() {
  check "$1" "the agent found $2 in the signed graph and staged it" \
    sh -c "grep -aq '^E2E-AGENT-LOG .*agent: available -> staged' '$LOGS/$1.log' &&
      grep -aq '^E2E-AGENT-LOG .*agent: rebooting into $2 ' '$LOGS/$1.log'"
  check "$1" "the agent rebooted the machine (a guest reboot, not the host)" \
    grep -aq "reboot: Restarting system" "$LOGS/$1.console.log"
}
entry_names() { list_entries "$1" | cut -d' ' -f3 | tr '\n' ' '; }

phase_boot() {
  local img=$W/sysroot.img n
  # 1: v1; make local state; stage v2; the power goes off half-way through the finalize.
  boot 1-v1-upgrade-power-cut "$img" edit-upgrade-cut cut
  n=1-v1-upgrade-power-cut
  common_checks $n v1
  check $n "health checks passed, v1 marked good" eq "$(m $n HEALTH)" "success active"
  check $n "upgrade --stage ran" step_ok $n
  check $n "v2 arrived as a signed static delta" grep -aq "via static delta" "$LOGS/$n.log"
  status_of $n AFTER | grep -q "$(csum v2).*staged" && pass "$n: v2 listed as staged" ||
    fail "$n: v2 listed as staged"
  check $n "the finalize was cut half-way" grep -aq 'E2E-POWER-CUT' "$LOGS/$n.log"
  log "  entries after the power cut: $(entry_names "$img")"

  # 2: the cut finalize never switched: v1 boots, in good order. From here on the update
  # agent runs: it finds v2 in the signed graph, stages it and reboots by itself.
  n=2-after-power-cut-agent
  boot $n "$img" fsck "" rebooting:v2
  common_checks $n v1
  check $n "the system repo is fsck-clean after the power cut" eq "$(m $n FSCK)" "rc=0"
  log "  FAULT RESULT: after the power cut mid-finalize the machine booted $(m $n VERSION) (the previous default), health $(m $n HEALTH)"
  check $n "local state from boot 1 intact (/etc edit)" eq "$(m $n ETC)" "setting=edited-in-v1"
  agent_checks $n v2

  # 3: v2 (the agent's reboot), with the /etc edit and /var file of v1; marked good; v3 is
  # published: the agent stages it and reboots.
  n=3-v2-agent
  publish_v3
  boot $n "$img" none "" rebooting:v3
  common_checks $n v2
  check $n "/etc edit survived the upgrade (3-way merge)" eq "$(m $n ETC)" "setting=edited-in-v1"
  check $n "/var file survived the upgrade" eq "$(m $n VARFILE)" "written-in-v1"
  check $n "health checks passed, v2 marked good" eq "$(m $n HEALTH)" "success active"
  check $n "v1 kept as rollback" lists $n v1
  check $n "the agent found v2 booted and verified it before looking further" \
    grep -aq "^E2E-AGENT-LOG .*rebooting -> verifying" "$LOGS/$n.log"
  agent_checks $n v3
  log "  entries: $(entry_names "$img")"

  # 4, 5: v3 fails its health check on each of its tries; the agent (which needs a good
  # boot) does not start.
  for n in 4-v3-try1 5-v3-try2; do
    boot $n "$img" none "" not-running
    common_checks $n v3
    check $n "health check fails, v3 not marked good" eq "$(m $n HEALTH)" "exit-code failed"
    check $n "the agent did not start on a boot whose health checks failed" \
      not_active "$(m $n AGENT-UNIT)"
    log "  entries: $(entry_names "$img")"
  done

  # 6: tries used up: the bootloader boots v2 by itself; roll back to v1. The agent reports
  # v3 as rolled back and does not stage it again.
  n=6-fallback-v2
  boot $n "$img" rollback "" rolled-back:v3
  common_checks $n v2
  check $n "the fallback is now the default (rollback --if-failed at boot)" default_is $n v2
  check $n "status reports v3 as failed" failed_in $n v3
  check $n "admin rollback ran" step_ok $n
  check $n "the agent reports v3 rolled back" grep -aq "^E2E-AGENT-STATE rolled-back:v3 " "$LOGS/$n.log"
  check $n "25 s (two graph checks) later: still rolled back, v3 not offered again" \
    eq "$(m $n AGENT-LATER)" "rolled-back:v3"
  check $n "the agent's status names v3 as never offered again" \
    sh -c "tr -d '\r' <'$LOGS/$n.log' | grep -q '^Not offered: v3 .*rolled back'"
  check $n "nothing staged" sh -c "! tr -d '\r' <'$LOGS/$n.log' | sed -n '/^E2E-AGENT-DEPLOYMENTS/,\$p' | grep -q staged"

  # 7: v1 is the default.
  n=7-rollback-v1
  boot $n "$img" none
  common_checks $n v1
  check $n "/var file still there" eq "$(m $n VARFILE)" "written-in-v1"

  # Cross-checks.
  n=A-oxtree-sysroot-debian-prepare-root
  boot $n "$W/sysroot-a.img" none
  common_checks $n v1 v1-ostree-initramfs
  check $n "Debian's ostree-prepare-root switched the root, not oxtree's" \
    sh -c "grep -aq \"running Debian's ostree-prepare-root\" '$LOGS/$n.console.log' &&
      ! grep -aq 'oxtree: booting deployment' '$LOGS/$n.console.log'"
  check $n "oxtree-remount.service mounted the stateroot /var" \
    grep -aq 'Mounted /sysroot/ostree/deploy/debian/var on /var' "$LOGS/$n.console.log"
  n=B-ostree-sysroot-oxtree-prepare-root
  boot $n "$W/sysroot-b.img" none
  common_checks $n v1
  check $n "oxtree's root switcher switched the root" \
    grep -aq 'oxtree: booting deployment' "$LOGS/$n.console.log"

  # A broken ostree= argument: a clear message on the console and the rescue shell.
  n=C-bad-ostree-argument
  boot $n "$W/sysroot-b.img" none bad-arg
  check $n "the root switcher names the broken boot link" \
    grep -aq "ostree-prepare-root (oxtree): error: .*ostree/boot.1/debian/0000/9" "$LOGS/$n.console.log"
  check $n "the console says what to do next" \
    grep -aq "oxtree: could not switch to the deployment" "$LOGS/$n.console.log"
  check $n "the initramfs drops to its rescue shell" grep -aqF "(initramfs)" "$LOGS/$n.console.log"
}

main() {
  mkdir -p "$W" "$LOGS"
  : >"$LOGS/summary.txt"
  W=$(cd "$W" && pwd)
  LOGS=$(cd "$LOGS" && pwd)
  [ -x "$OXTREE" ] || { echo "no oxtree binary at $OXTREE (cargo build --release)" >&2; exit 1; }
  [ -x "$OXTREE_GUEST" ] || { echo "no oxtree binary for the guest at $OXTREE_GUEST (cargo build --release -p oxtree-cli --features failpoints --target-dir target/failpoints)" >&2; exit 1; }
  local p
  for p in ${E2E_PHASES:-rootfs tree commit sysroot image boot}; do
    log "== $p"
    "phase_$p"
  done
  log "serial logs: $LOGS"
  if [ "$FAILS" -gt 0 ]; then
    log "E2E: $FAILS check(s) FAILED"
    exit 1
  fi
  log "E2E: all checks passed in $(($(date +%s) - T0)) s"
}
main "$@"
