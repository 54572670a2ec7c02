#!/bin/sh
# dist/install.sh ROOT [BINARY]: install oxtree into the OS tree at ROOT (a tree being
# built into an image, or / on a running system): the binary, also as `ostree` (the name
# the stock ostree units and scripts call) and as ostree-prepare-root; the initramfs-tools
# hook and script; the systemd units, enabled; /etc/oxtree/health.d for health checks; man
# pages and bash/zsh/fish completions, generated from the binary's own option tables.
# Regenerate the initramfs afterwards (update-initramfs -u).
set -eu
ROOT=${1:?usage: install.sh ROOT [BINARY]}
BIN=${2:-$(dirname "$0")/../target/release/oxtree}
D=$(cd "$(dirname "$0")" && pwd)
install -D -m 0755 "$BIN" "$ROOT/usr/bin/oxtree"
# Debug info is most of a release binary; the initramfs carries a copy too.
if command -v strip >/dev/null; then strip "$ROOT/usr/bin/oxtree"; fi
ln -sf oxtree "$ROOT/usr/bin/ostree"
mkdir -p "$ROOT/usr/lib/ostree"
ln -sf ../../bin/oxtree "$ROOT/usr/lib/ostree/ostree-prepare-root"
ln -sf ../../bin/oxtree "$ROOT/usr/lib/ostree/ostree-remount"
install -D -m 0755 "$D/initramfs-tools/hooks/oxtree" "$ROOT/usr/share/initramfs-tools/hooks/oxtree"
install -D -m 0755 "$D/initramfs-tools/scripts/local-bottom/oxtree" \
  "$ROOT/usr/share/initramfs-tools/scripts/local-bottom/oxtree"
for u in "$D"/systemd/*; do
  install -D -m 0644 "$u" "$ROOT/usr/lib/systemd/system/$(basename "$u")"
done
# Enabled here unless NO_ENABLE=1 (the Debian package enables them in its postinst).
if [ "${NO_ENABLE:-0}" != 1 ]; then
  wants() { mkdir -p "$ROOT/etc/systemd/system/$1.wants"; ln -sf "/usr/lib/systemd/system/$2" "$ROOT/etc/systemd/system/$1.wants/$2"; }
  wants multi-user.target oxtree-finalize-staged.path
  wants multi-user.target oxtree-boot-complete.service
  wants local-fs.target oxtree-remount.service
  # Health checks gate boot-complete.target (systemd-bless-boot marks the boot good after it).
  mkdir -p "$ROOT/etc/systemd/system/boot-complete.target.requires"
  ln -sf /usr/lib/systemd/system/oxtree-boot-complete.service \
    "$ROOT/etc/systemd/system/boot-complete.target.requires/oxtree-boot-complete.service"
fi
mkdir -p "$ROOT/etc/oxtree/health.d"
"$BIN" generate man "$ROOT/usr/share/man/man1"
mkdir -p "$ROOT/usr/share/bash-completion/completions" "$ROOT/usr/share/zsh/vendor-completions" \
  "$ROOT/usr/share/fish/vendor_completions.d"
"$BIN" generate completions bash >"$ROOT/usr/share/bash-completion/completions/oxtree"
"$BIN" generate completions zsh >"$ROOT/usr/share/zsh/vendor-completions/_oxtree"
"$BIN" generate completions fish >"$ROOT/usr/share/fish/vendor_completions.d/oxtree.fish"
