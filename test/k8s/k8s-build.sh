#!/usr/bin/env bash
# Builds the Kubernetes the tests run on, from the Go module proxy only:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl
#     from k8s.io/kubernetes used as a module (its staging modules, which its own go.mod points
#     at ./staging, replaced by their published versions v0.<minor>.<patch>);
#   etcd from go.etcd.io/etcd/server/v3 (Debian's 3.4 lacks RequestWatchProgress, which a watch
#     with no resourceVersion needs).
# Everything lands in a cache ($FNBUS_K8S_CACHE, default ~/.cache/fnbus/k8s): a second run is a
# no-op; the first takes ~10-18 minutes on 2 cores. Prints the folder holding the binaries.
#
#   bash test/k8s/k8s-build.sh        (FNBUS_K8S_VERSION=v1.37.2, FNBUS_ETCD_VERSION=v3.7.3)
set -euo pipefail

version=${FNBUS_K8S_VERSION:-v1.37.2}
etcd_version=${FNBUS_ETCD_VERSION:-v3.7.3}
cache=${FNBUS_K8S_CACHE:-$HOME/.cache/fnbus/k8s}
bin=$cache/bin/$version
etcd_bin=$cache/bin/etcd-$etcd_version
components="kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl"

# The module and build caches stay with the binaries: a warm machine rebuilds nothing.
export GOMODCACHE=$cache/gomod GOCACHE=$cache/gobuild GOFLAGS=-mod=mod CGO_ENABLED=0
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

say() { printf 'k8s-build: %s\n' "$*" >&2; }

command -v go >/dev/null || { say 'needs Go (apt-get install golang, or the machine'"'"'s /usr/local/go)'; exit 1; }

build_kubernetes() {
  local missing=0 c
  for c in $components; do [ -x "$bin/$c" ] || missing=1; done
  if [ $missing = 0 ]; then say "kubernetes $version: cached"; return; fi
  local work=$cache/src/kubernetes-$version
  mkdir -p "$work" "$bin"
  if [ ! -f "$work/go.mod" ]; then
    local upstream go_line staging=v0.${version#v1.}
    upstream=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$version" |
      sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$upstream" ] || { say "k8s.io/kubernetes@$version not on the module proxy"; exit 1; }
    go_line=$(grep -m1 '^go ' "$upstream")
    {
      printf 'module fnbus.test/k8s\n\n%s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$go_line" "$version"
      grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$upstream" | awk -v v="$staging" '{ printf "\t%s => %s %s\n", $1, $1, v }'
      printf ')\n'
    } > "$work/go.mod.tmp"
    mv "$work/go.mod.tmp" "$work/go.mod"
  fi
  local minor=${version#v1.} flags="-s -w" pkg packages=""
  minor=${minor%%.*}
  # What `kubectl version` and the API server's /version report, as a release build sets them.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags="$flags -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for c in $components; do packages="$packages k8s.io/kubernetes/cmd/$c"; done
  say "building $components $version (long the first time)"
  local started=$SECONDS
  # shellcheck disable=SC2086
  (cd "$work" && go build -trimpath -ldflags "$flags" -o "$bin/" $packages)
  say "kubernetes built in $((SECONDS - started)) s"
}

build_etcd() {
  if [ -x "$etcd_bin/etcd" ]; then say "etcd $etcd_version: cached"; return; fi
  local work=$cache/src/etcd-$etcd_version
  mkdir -p "$work" "$etcd_bin"
  printf 'module fnbus.test/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$etcd_version" > "$work/go.mod"
  say "building etcd $etcd_version"
  (cd "$work" && go build -trimpath -ldflags '-s -w' -o "$etcd_bin/etcd" go.etcd.io/etcd/server/v3)
}

build_kubernetes
build_etcd
echo "$bin"
