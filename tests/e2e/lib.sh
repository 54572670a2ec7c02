# tests/e2e/lib.sh: sourced by the QEMU e2e scripts (qemu-boot.sh, ovmf-boot.sh). The Debian
# tree both boot comes from one debootstrap, cached in $CACHE (/var/cache/oxtree-e2e) and
# keyed on its package list, so the second script never debootstraps again. The caller
# defines INCLUDE, CACHE, LOGS and log().

find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && awk '/^URIs:/{print $2; exit}' "$f" | grep -v security && return 0
  done
  awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null
}

# ------------------------------------------------------------------ rootfs (cached) ----
phase_rootfs() {
  local key="bookworm minbase $INCLUDE"
  mkdir -p "$CACHE"
  if [ -d "$CACHE/rootfs" ] && [ "$(cat "$CACHE/rootfs.key" 2>/dev/null)" = "$key" ]; then
    log "rootfs: cached in $CACHE/rootfs"
  else
    local m=${MIRROR:-$(find_mirror | head -1)}
    rm -rf "$CACHE/rootfs" "$CACHE/rootfs.new"
    log "rootfs: debootstrap from $m"
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$CACHE/rootfs.new" "$m" \
      >"$LOGS/debootstrap.log" 2>&1 || { tail -20 "$LOGS/debootstrap.log"; exit 1; }
    mv "$CACHE/rootfs.new" "$CACHE/rootfs"
    echo "$key" >"$CACHE/rootfs.key"
  fi
  # Debian's real ostree-prepare-root, for cross-check A (ostree-boot pulls in dracut, so
  # it is unpacked here rather than installed).
  if [ ! -x "$CACHE/ostree-boot/usr/lib/ostree/ostree-prepare-root" ]; then
    (cd "$CACHE" && rm -f ostree-boot_*.deb &&
      { apt-get download ostree-boot >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download ostree-boot >/dev/null; }; } &&
      rm -rf ostree-boot && dpkg-deb -x ostree-boot_*.deb ostree-boot)
  fi
}

