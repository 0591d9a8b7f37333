#!/usr/bin/env bash
# The container test's machinery (`make containers`): installs podman, builds stand-ins of the
# base images the Dockerfiles name, then the project's images from the Dockerfiles as committed.
#
#   scripts/containers.sh install   podman, runc, podman-compose, debootstrap (apt; idempotent)
#   scripts/containers.sh bases     the stand-in base images (skipped when present)
#   scripts/containers.sh images    podman build of Dockerfile.rust and Dockerfile.python
#   scripts/containers.sh env       the environment lines the other commands use (for `eval`)
#   scripts/containers.sh all       install, bases (the default)
#
# No image registry is reachable here, so the bases are built from Debian packages under the
# names the Dockerfiles use (docs/BENCHMARKS.md, "Containers", says what that cannot prove):
#   debian:bookworm-slim        debootstrap --variant=minbase bookworm, docs and lists removed
#   python:3.11-slim-bookworm   that + Debian's python3.11, venv and pip, laid out as the
#                               official image has them (/usr/local/bin/python, pip)
#   rust:1.95.0-slim-bookworm   that + gcc and this machine's pinned toolchain (rustup and cargo
#                               homes at /usr/local/rustup and /usr/local/cargo)
# Podman's settings are the project's file scripts/containers/containers.conf (CONTAINERS_CONF):
# runc as the runtime, no default ulimits. Nothing under /etc is edited.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

export CONTAINERS_CONF="$root/scripts/containers/containers.conf"
cache=${CONTAINERS_CACHE:-/var/tmp/trading-system-containers}
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
suite=bookworm

log() { echo "containers: $*" >&2; }

# The Debian mirror this machine's apt uses (its sources), so the stand-ins and the builds in
# them fetch packages from where apt does.
mirror() {
  local uri
  uri=$(sed -n 's/^URIs: *\(\S*\/debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    head -n 1)
  if [[ -z "$uri" ]]; then
    uri=$(sed -n 's/^deb \(\[[^]]*\] \)\?\(\S*\/debian\)\/\? .*/\2/p' /etc/apt/sources.list \
      2>/dev/null | head -n 1)
  fi
  [[ -n "$uri" ]] || { log "no Debian mirror in the apt sources"; exit 1; }
  echo "$uri"
}

install() {
  local missing=()
  for tool in podman runc podman-compose debootstrap slirp4netns fuse-overlayfs newuidmap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [[ -x /usr/lib/podman/netavark ]] || missing+=(netavark)
  if ((${#missing[@]} == 0)); then
    return
  fi
  log "installing podman and its tools (missing: ${missing[*]})"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    podman runc podman-compose debootstrap slirp4netns fuse-overlayfs uidmap netavark \
    aardvark-dns iptables catatonit ca-certificates
}

has_image() { podman image exists "$1"; }

# debian:bookworm-slim: a minbase bootstrap without docs, man pages, locales or apt lists.
base_debian() {
  local rootfs="$cache/rootfs-$suite"
  if [[ ! -f "$rootfs/etc/debian_version" ]]; then
    log "debootstrap $suite (minbase)"
    rm -rf "$rootfs"
    mkdir -p "$cache"
    debootstrap --variant=minbase "$suite" "$rootfs" "$(mirror)" >"$cache/debootstrap.log" 2>&1 ||
      { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
  fi
  log "importing debian:$suite-slim"
  # The official image's sources: the suite, its updates and security (the same mirror).
  local mirror_uri security
  mirror_uri=$(mirror)
  security="${mirror_uri%/debian}/debian-security"
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror_uri $suite main
deb $mirror_uri $suite-updates main
deb $security $suite-security main
EOF
  # As the official slim image: no apt lists, docs, man pages, translations or caches, and dpkg
  # told to leave them out of the packages installed later (its dpkg.cfg.d/docker).
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  printf 'path-exclude /usr/share/%s/*\n' doc man groff info lintian linda locale \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
  echo 'path-include /usr/share/doc/*/copyright' >>"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
  tar -C "$rootfs" --numeric-owner -c . |
    podman import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      - "docker.io/library/debian:$suite-slim" >/dev/null
}

# The egress certificate authorities this machine trusts beyond Debian's (an HTTPS proxy between
# this machine and the registries): the stand-ins trust them too, so cargo and pip inside a
# build reach crates.io and PyPI as they do here.
extra_cas() {
  local dir=$1
  mkdir -p "$dir"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$dir/"
  fi
}

base_python() {
  local ctx="$cache/python-context"
  rm -rf "$ctx" && mkdir -p "$ctx"
  extra_cas "$ctx/cas"
  log "building python:3.11-slim-$suite"
  podman build --quiet -f scripts/containers/python.Containerfile \
    -t "docker.io/library/python:3.11-slim-$suite" "$ctx" >/dev/null
}

base_rust() {
  local ctx="$cache/rust-context"
  local sysroot
  sysroot=$(rustup run "$channel" rustc --print sysroot)
  rm -rf "$ctx" && mkdir -p "$ctx/rustup/toolchains" "$ctx/cargo/bin"
  extra_cas "$ctx/cas"
  # The pinned toolchain, as rustup's minimal profile has it (rustc, cargo, the standard
  # library): no docs, no sources, no clippy or rustfmt.
  log "copying the $channel toolchain from $sysroot"
  local tc="$ctx/rustup/toolchains/$channel-x86_64-unknown-linux-gnu"
  mkdir -p "$tc/bin" "$tc/lib"
  cp -a "$sysroot"/bin/{cargo,rustc,rustdoc} "$tc/bin/"
  cp -a "$sysroot"/lib/. "$tc/lib/"
  # (rust-lld and gcc-ld stay: rustc links with them on this target.)
  rm -rf "$tc/lib/rustlib/src" "$tc/lib/rustlib/"manifest-{clippy,rustfmt,rust-docs}*
  [[ -d "$sysroot/libexec" ]] && cp -a "$sysroot/libexec" "$tc/"
  # rustup and its proxies, as the official image has them (hard links to one binary).
  cp "$(command -v rustup)" "$ctx/cargo/bin/rustup"
  for proxy in cargo rustc rustdoc; do
    ln "$ctx/cargo/bin/rustup" "$ctx/cargo/bin/$proxy"
  done
  printf 'version = "12"\ndefault_toolchain = "%s-x86_64-unknown-linux-gnu"\nprofile = "minimal"\n' \
    "$channel" >"$ctx/rustup/settings.toml"
  log "building rust:$channel-slim-$suite"
  podman build --quiet -f "$root/scripts/containers/rust.Containerfile" \
    -t "docker.io/library/rust:$channel-slim-$suite" "$ctx" >/dev/null
  rm -rf "$ctx"
}

bases() {
  has_image "docker.io/library/debian:$suite-slim" || base_debian
  has_image "docker.io/library/python:3.11-slim-$suite" || base_python
  has_image "docker.io/library/rust:$channel-slim-$suite" || base_rust
  podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'library/(debian|python|rust):' >&2
}

images() {
  podman build -f Dockerfile.rust -t trading-system/rust-engine .
  podman build -f Dockerfile.python -t trading-system/python .
}

case "${1:-all}" in
  install) install ;;
  bases) bases ;;
  images) images ;;
  env) echo "export CONTAINERS_CONF=$CONTAINERS_CONF" ;;
  all)
    install
    bases
    ;;
  *)
    echo "usage: scripts/containers.sh [install|bases|images|env|all]" >&2
    exit 2
    ;;
esac
