#!/bin/sh
# dist/deb/build.sh OUTDIR [BINARY]: build the Debian package of oxtree (oxtree_VERSION_ARCH.deb
# in OUTDIR) from a built binary (default target/release/oxtree): the binary, also as `ostree`,
# `ostree-prepare-root` and `ostree-remount` (so it replaces Debian's ostree and ostree-boot,
# whose units and scripts then run oxtree), the initramfs-tools hook and script, the systemd
# units (enabled at install by deb-systemd-helper, as debhelper's scripts do), man pages and
# shell completions generated from the binary, and /etc/oxtree/health.d.
#
# A small script around dpkg-deb rather than cargo-deb: the file layout is dist/install.sh's
# (one list of files for both), dpkg-deb is on every Debian system, and cargo-deb would be a
# tool of a hundred crates to build first. SOURCE_DATE_EPOCH makes the package reproducible;
# DEB_COMPRESS picks the compressor (xz; the tests use none).
set -eu
OUT=${1:?usage: build.sh OUTDIR [BINARY]}
D=$(cd "$(dirname "$0")/.." && pwd)
BIN=${2:-$D/../target/release/oxtree}
[ -x "$BIN" ] || { echo "no oxtree binary at $BIN (cargo build --release -p oxtree-cli)" >&2; exit 1; }
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$D/../Cargo.toml" | head -1)
ARCH=$(dpkg --print-architecture)
: "${SOURCE_DATE_EPOCH:=$(git -C "$D" log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH
mkdir -p "$OUT"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/oxtree-deb.XXXXXX")
chmod 0755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
NO_ENABLE=1 "$D/install.sh" "$STAGE" "$BIN"
# Debian policy: compressed man pages, a copyright file, no /etc symlinks in the data (the
# units are enabled by the maintainer scripts instead).
find "$STAGE/usr/share/man" -type f -name '*.1' -exec gzip -9n {} +
install -D -m 0644 /dev/stdin "$STAGE/usr/share/doc/oxtree/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: oxtree
Files: *
License: LGPL-2.0+
 On Debian systems, the full text of the GNU Library General Public License
 version 2 can be found in /usr/share/common-licenses/LGPL-2.
COPYRIGHT
UNITS="oxtree-finalize-staged.path oxtree-boot-complete.service oxtree-remount.service"
# Installed-Size as dpkg-gencontrol counts it: each file's apparent size in KiB rounded up,
# 1 for each directory or link. Not `du`, whose block counts vary with the file system
# (speculative preallocation, delayed allocation), which made two builds differ.
SIZE=$(find "$STAGE" -mindepth 1 -printf '%y %s\n' | awk '$1 == "f" { t += int(($2 + 1023) / 1024); next } { t += 1 } END { print t + 0 }')
mkdir -p "$STAGE/DEBIAN"
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: oxtree
Version: $VERSION
Architecture: $ARCH
Maintainer: oxtree developers <oxtree@localhost>
Section: admin
Priority: optional
Depends: libc6 (>= 2.34)
Recommends: systemd-boot, initramfs-tools
Suggests: e2fsprogs, qemu-utils
Conflicts: ostree, ostree-boot
Replaces: ostree, ostree-boot
Provides: ostree
Installed-Size: $SIZE
Description: image-based, atomic OS updates, compatible with OSTree
 oxtree stores operating-system trees in an OSTree-compatible content-addressed
 repository and deploys them as bootable, atomically switched deployments, with
 boot counting and automatic rollback (systemd-boot), an update agent and an image
 builder. It reads and writes what ostree does, and replaces its commands.
CONTROL
cat >"$STAGE/DEBIAN/postinst" <<POSTINST
#!/bin/sh
set -e
if [ "\$1" = configure ] || [ "\$1" = abort-upgrade ]; then
  for u in $UNITS; do
    if deb-systemd-helper --quiet was-enabled "\$u"; then deb-systemd-helper enable "\$u" >/dev/null || true
    else deb-systemd-helper update-state "\$u" >/dev/null || true; fi
  done
  # Health checks gate boot-complete.target (systemd-bless-boot marks the boot good after it).
  mkdir -p /etc/systemd/system/boot-complete.target.requires
  ln -sf /usr/lib/systemd/system/oxtree-boot-complete.service \\
    /etc/systemd/system/boot-complete.target.requires/oxtree-boot-complete.service
fi
POSTINST
cat >"$STAGE/DEBIAN/postrm" <<POSTRM
#!/bin/sh
set -e
if [ "\$1" = remove ] || [ "\$1" = purge ]; then
  rm -f /etc/systemd/system/boot-complete.target.requires/oxtree-boot-complete.service
  for u in $UNITS; do deb-systemd-helper purge "\$u" >/dev/null 2>&1 || true; done
fi
POSTRM
# The initramfs must carry the new root switcher.
echo "activate-noawait update-initramfs" >"$STAGE/DEBIAN/triggers"
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/postrm"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/triggers"
DEB="$OUT/oxtree_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
