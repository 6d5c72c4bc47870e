#!/usr/bin/env bash
# Builds (once) and caches a real kube-apiserver for the end-to-end tests, and makes sure etcd
# and kubectl are installed. Prints the path of the cached kube-apiserver binary on stdout.
#
# There is no container engine on the project's machines, so kind/k3d/envtest downloads cannot
# work. Debian bookworm ships the Kubernetes 1.20.2 source with vendored Go dependencies, Go 1.19
# and etcd 3.4; building the API server from that source gives a genuine control plane
# (structural CRD validation, status subresource, server-side apply, Leases, RBAC).
set -euo pipefail

VERSION=1.20.2
cache="${XDG_CACHE_HOME:-$HOME/.cache}/epic-operator"
bin="$cache/kube-apiserver-$VERSION"
log() { echo "ensure-kube-apiserver: $*" >&2; }

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated -eq 0 ]; then sudo_if_needed apt-get update -qq >&2; apt_updated=1; fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq "${missing[@]}" >&2
}

ensure_deb_src() {
  local list=/etc/apt/sources.list.d/epic-operator-deb-src.sources
  [ -f "$list" ] && return 0
  # Mirror the machine's own Debian entry (same URIs and keyring) rather than naming a host here.
  local src=/etc/apt/sources.list.d/debian.sources uris keyring
  uris=$(awk '/^URIs:/ {print $2; exit}' "$src")
  keyring=$(awk '/^Signed-By:/ {print $2; exit}' "$src")
  [ -n "$uris" ] || { log "cannot find a Debian URIs entry in $src"; exit 1; }
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: %s\n' \
    "$uris" "$keyring" | sudo_if_needed tee "$list" >/dev/null
  sudo_if_needed apt-get update -qq >&2
  apt_updated=1
}

apt_install etcd-server
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

ensure_deb_src
apt_install golang-go rsync dpkg-dev golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev

work=$(mktemp -d "${TMPDIR:-/tmp}/kube-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
log "downloading the kubernetes source package"
apt-get source --download-only kubernetes >&2
tar xzf kubernetes_*.orig.tar.gz
cd "kubernetes-$VERSION"

# Go 1.19 breaks the vendored reflect2 1.0.1 (the API server faults decoding custom resources);
# swap in Debian's reflect2 1.0.2 and json-iterator 1.1.12 sources.
replace_vendor() { # package vendor-dir pattern...
  local pkg=$1 dir=$2; shift 2
  local srcdir
  srcdir=$(dpkg -L "$pkg" | grep -E '/src/github.com/' | awk -F/src/ '{print $1"/src/"$2}' | \
    grep -E "/${dir#vendor/}$" | head -n1)
  [ -n "$srcdir" ] || { log "cannot find sources of $pkg"; exit 1; }
  rm -rf "$dir"; mkdir -p "$dir"
  for pat in "$@"; do find "$srcdir" -maxdepth 1 -name "$pat" ! -name '*_test.go' -exec cp {} "$dir/" \; ; done
}
replace_vendor golang-github-modern-go-reflect2-dev vendor/github.com/modern-go/reflect2 '*.go' '*.s'
replace_vendor golang-github-json-iterator-go-dev vendor/github.com/json-iterator/go '*.go'

mkdir -p .go/src/k8s.io && ln -s ../../.. .go/src/k8s.io/kubernetes
log "building kube-apiserver (about 4 minutes on 2 cores)"
GOPATH=$PWD/.go CGO_ENABLED=0 HOME=$work GOFLAGS=-mod=vendor make WHAT=cmd/kube-apiserver >&2
mkdir -p "$cache"
cp _output/bin/kube-apiserver "$bin.tmp"
mv "$bin.tmp" "$bin"
log "cached $bin"
echo "$bin"
