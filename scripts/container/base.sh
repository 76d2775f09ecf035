#!/usr/bin/env bash
# Builds local stand-ins for the official base images the Dockerfile names (node:20-bookworm for the build stage,
# node:20-bookworm-slim for the runtime), because no image registry is reachable from our build machines
# (../shared/container.md). Debian bookworm minbase from the host's Debian mirror, plus the host's Node 20 laid
# out as the official image does (/usr/local/bin/node, npm in /usr/local/lib/node_modules, headers in
# /usr/local/include/node). No extra CA is baked in: the Dockerfile's extra_ca build secret supplies it, as it
# would for an operator behind a TLS-inspecting proxy.
#
# Cached by content: the rootfs tarballs live in $TW_CONTAINER_CACHE (default /var/tmp/threadwarden-container),
# keyed by the recipe, the host's node and npm and the mirror; the images carry the key as a label and are re-imported only
# when it changed. Usage: base.sh PODMAN-ARGS... (the global podman options, e.g. --storage-driver=vfs).
set -euo pipefail
podman_args=("$@")
pm() { podman "${podman_args[@]}" "$@"; }

cache=${TW_CONTAINER_CACHE:-/var/tmp/threadwarden-container}
node_bin=$(command -v node)
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
node_include=$(dirname "$(dirname "$node_bin")")/include/node
# The host's Debian mirror (the archive itself, not -security or third-party repositories).
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
# What the rootfs is made of; change it (and so the key) when the steps below change what they produce.
recipe='debootstrap minbase bookworm; node+npm+headers in /usr/local; full adds python3 make g++ ca-certificates'
build_packages='python3 make g++ ca-certificates'
key=$( { echo "$recipe"; "$node_bin" --version; cat "$npm_dir/package.json"; echo "$mirror"; } | sha256sum | cut -c1-16)
full=docker.io/library/node:20-bookworm
slim=docker.io/library/node:20-bookworm-slim

have() { [ "$(pm image inspect --format '{{index .Labels "threadwarden.base"}}' "$1" 2>/dev/null)" = "$key" ]; }
if have "$full" && have "$slim"; then
  echo "base: $full and $slim are current (key $key)"
  exit 0
fi

dir=$cache/$key
mkdir -p "$dir"
if [ ! -s "$dir/slim.tar" ] || [ ! -s "$dir/full.tar" ]; then
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  cleanup() {
    umount "$root/proc" 2>/dev/null || true
    rm -rf "$root"
  }
  trap cleanup EXIT
  t0=$SECONDS
  echo "base: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 \
    || { tail -20 "$dir/debootstrap.log"; exit 1; }
  install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules" "$root/usr/local/include"
  cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
  cp -a "$node_include" "$root/usr/local/include/node"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$dir/slim.tar.tmp" . && mv "$dir/slim.tar.tmp" "$dir/slim.tar"
  echo "base: slim rootfs in $((SECONDS - t0)) s"
  # The full image has what node-gyp needs (the official one is buildpack-deps: python3, make, g++).
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  chroot "$root" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends '"$build_packages"' >/dev/null && rm -rf /var/lib/apt/lists/*' \
    >"$dir/apt.log" 2>&1 || { tail -20 "$dir/apt.log"; exit 1; }
  umount "$root/proc"
  : >"$root/etc/resolv.conf"
  tar -C "$root" -cf "$dir/full.tar.tmp" . && mv "$dir/full.tar.tmp" "$dir/full.tar"
  echo "base: full rootfs in $((SECONDS - t0)) s"
  cleanup
  trap - EXIT
fi
for pair in "slim:$slim" "full:$full"; do
  tar_name=${pair%%:*}
  image=${pair#*:}
  # node-gyp would download the headers from nodejs.org; the official image can, we cannot, so point it at the
  # headers that ship with this node (the one change from the official images).
  pm import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV npm_config_nodedir=/usr/local' \
    --change 'CMD ["node"]' \
    --change "LABEL threadwarden.base=$key" \
    "$dir/$tar_name.tar" "$image" >/dev/null
  echo "base: imported $image ($(pm image inspect --format '{{.Size}}' "$image") bytes)"
done
# Older keys' tarballs are dead weight.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name 'rootfs.*' ! -name storage ! -name run -exec rm -rf {} +
