#!/usr/bin/env bash
# Builds the peer controllers `make bench-peers` races modeldeploy against
# (today: the Argo Rollouts controller) from the pinned Go module in this
# folder, and caches them with their CRDs under
# ~/.cache/modeldeploy/peers-<key>, where the key is a hash of go.mod, go.sum
# and this script: a second run builds nothing. Prints the cache folder as its
# last line. The binaries are never committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"

if ! command -v go >/dev/null 2>&1; then
  echo "error: the Go toolchain is needed to build the peer controllers (go >= 1.26)." >&2
  echo "       install it from your distribution or https://go.dev/dl and run again." >&2
  exit 1
fi

key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
out="$cache_root/peers-$key"
# The controller's informers wait for every Argo kind, so it needs all five CRDs to start.
crds=(rollout-crd.yaml analysis-run-crd.yaml analysis-template-crd.yaml cluster-analysis-template-crd.yaml
  experiment-crd.yaml)
wanted=(rollouts-controller "${crds[@]}")

missing=0
for f in "${wanted[@]}"; do [[ -s "$out/$f" ]] || missing=1; done
if [[ $missing == 0 ]]; then
  echo "$out"
  exit 0
fi

cd "$here"
# Argo Rollouts' go.mod asks for a newer Go than may be installed (1.26.10 for
# v1.10.2): let the go command fetch that toolchain through the module proxy.
export GOTOOLCHAIN=auto GOFLAGS="-buildvcs=false -mod=mod" CGO_ENABLED=0
pkg=github.com/argoproj/argo-rollouts
argo_version="$(go list -m -f '{{.Version}}' "$pkg")"
# What `rollouts-controller --version` prints, stamped as Argo's Makefile does (the tag without its "v"); with
# no git commit to stamp (the module proxy gives none) it reads v1.10.2+unknown.
ldflags="-s -w -X $pkg/utils/version.version=${argo_version#v} -X $pkg/utils/version.gitTreeState=clean"

mkdir -p "$out.tmp" "$cache_root/logs"
log="$cache_root/logs/build-peers-$key.log"
echo "building the peer controllers (Argo Rollouts $argo_version)" >&2
echo "  into $out; the first build takes 5-10 minutes on 2 cores; log: $log" >&2
start=$SECONDS
# -v names each package as it compiles: turn that into a progress line.
set +e
go build -v -trimpath -ldflags "$ldflags" -o "$out.tmp/rollouts-controller" "$pkg/cmd/rollouts-controller" 2>&1 \
  | tee "$log" \
  | awk '{n++; if (n % 100 == 0) { printf "  compiled %d packages...\n", n; fflush() } }' >&2
status=${PIPESTATUS[0]}
set -e
if [[ $status != 0 || ! -x "$out.tmp/rollouts-controller" ]]; then
  echo "error: go build of the Argo Rollouts controller failed; log: $log (last lines below)" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
# Only now: before the build has downloaded the module's source, `go list -m` names no folder for it.
argo_dir="$(go list -m -f '{{.Dir}}' "$pkg")"
for f in "${crds[@]}"; do
  cp "$argo_dir/manifests/crds/$f" "$out.tmp/$f"
done
# The module cache is read-only; the copies need not be.
chmod u+w "$out.tmp"/*.yaml
rm -rf "$out"
mv "$out.tmp" "$out"
echo "  built in $((SECONDS - start)) s" >&2
echo "$out"
