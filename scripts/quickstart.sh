#!/usr/bin/env bash
# Build oxtree and run its main job on a real tree: commit /usr into a new archive repo,
# list it, check it out, verify it. Everything goes under ${WORK:-/var/tmp/oxtree-quickstart}.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p oxtree-cli
OX=$PWD/target/release/oxtree
WORK=${WORK:-/var/tmp/oxtree-quickstart}
TREE=${TREE:-/usr}
rm -rf "$WORK" && mkdir -p "$WORK"
$OX init --repo="$WORK/repo" --mode=archive
time $OX commit --repo="$WORK/repo" -b quickstart -s "snapshot of $TREE" "$TREE"
$OX log --repo="$WORK/repo" quickstart
$OX ls --repo="$WORK/repo" quickstart / | sed -n "1,20p"
time $OX checkout --repo="$WORK/repo" quickstart "$WORK/checkout"
time $OX fsck --repo="$WORK/repo"
echo "files in checkout: $(find "$WORK/checkout" | wc -l)"
