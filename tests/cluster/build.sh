#!/usr/bin/env bash
# Builds the local control plane's binaries from the pinned Go modules in this
# folder and caches them under ~/.cache/modeldeploy/bin-<key>, where the key is
# a hash of go.mod, go.sum and this script: a second run builds nothing.
# Prints the cache folder as its last line.
#
# `build.sh node` builds the real node's binaries instead (kubelet and kube-proxy
# from the Kubernetes module here; containerd, its runc shim, ctr, the CNI plugins
# and the pause and echo-server programs from the module in node/) into
# ~/.cache/modeldeploy/node-<key>.
#
# `build.sh prometheus` builds the Prometheus server the tests run, from the
# module in prometheus/, into ~/.cache/modeldeploy/prometheus-<key>; `build.sh s3`
# the S3 server the real node's models come from (versitygw, module in s3/); `build.sh checks`
# the checkers the tests judge statuses and the chart's dashboard with (kstatus, Flux's CEL health
# checks, Grafana's dashboard schema; module in checks/); `build.sh dns` the CoreDNS the real node's pods
# resolve Service names with (module and its plugin list in dns/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"

if ! command -v go >/dev/null 2>&1; then
  echo "error: the Go toolchain is needed to build the local control plane (go >= 1.26)." >&2
  echo "       install it from your distribution or https://go.dev/dl and run again." >&2
  exit 1
fi
# The modules need Go 1.26. A go from 1.21 on fetches that toolchain from the module proxy by itself, unless
# GOTOOLCHAIN=local forbids it; an older one fails later with errors that do not say so.
go_version="$(go env GOVERSION 2>/dev/null || echo unknown)"
go_minor="$(sed -n 's/^go1\.\([0-9]*\).*/\1/p' <<<"$go_version")"
if [[ -z $go_minor ]] || (( go_minor < 21 )) || { (( go_minor < 26 )) && [[ "$(go env GOTOOLCHAIN)" == local ]]; }; then
  echo "error: found $go_version; the local control plane's modules need go >= 1.26" >&2
  echo "       (or go >= 1.21 without GOTOOLCHAIN=local, which fetches go 1.26 by itself)." >&2
  echo "       install a newer Go from your distribution or https://go.dev/dl and run again." >&2
  exit 1
fi

what="${1:-control-plane}"
if [[ $what == node ]]; then
  key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" "$here"/node/go.* "$here"/node/cmd/*/*.go \
    | sha256sum | cut -c1-16)"
  out="$cache_root/node-$key"
  tools=(kubelet kube-proxy containerd containerd-shim-runc-v2 ctr bridge host-local loopback portmap
    pause echo-server)
elif [[ $what == prometheus || $what == s3 || $what == checks || $what == dns ]]; then
  sources=("$here/$what"/go.*)
  [[ $what != checks ]] || sources+=("$here"/checks/cmd/*/*.go)  # the checker's own code is built too
  [[ $what != dns ]] || sources+=("$here"/dns/cmd/*/*.go)        # and CoreDNS's main, which picks its plugins
  key="$(cat "$here/build.sh" "${sources[@]}" | sha256sum | cut -c1-16)"
  out="$cache_root/$what-$key"
  case $what in
    s3) tools=(versitygw) ;; checks) tools=(statuscheck dashboardcheck) ;; dns) tools=(coredns) ;; *) tools=(prometheus) ;;
  esac
else
  key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
  out="$cache_root/bin-$key"
  tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl helm etcd)
fi

missing=0
for t in "${tools[@]}"; do [[ -x "$out/$t" ]] || missing=1; done
if [[ $missing == 0 ]]; then
  echo "$out"
  exit 0
fi

k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/go.mod")"
kwok_version="$(awk '$1=="sigs.k8s.io/kwok"{print $2; exit}' "$here/go.mod")"
helm_version="$(awk '$1=="helm.sh/helm/v3"{print $2; exit}' "$here/go.mod")"
# Tools read --version to choose flags, so stamp the real versions in.
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=$k8s_version"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$k8s_version" | cut -d. -f2)"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"
ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$k8s_version"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$helm_version"

mkdir -p "$out.tmp" "$cache_root/logs"
log="$cache_root/logs/build-$what-$key.log"
: > "$log"
cd "$here"
export GOFLAGS="-buildvcs=false -mod=mod" CGO_ENABLED=0
start=$SECONDS

# go build PKG... with -v, which names each package as it compiles: turned into a progress line, out of the
# packages `go list -deps` counts (those already in Go's build cache are not compiled again: the count is
# an upper bound, and a warm build ends early).
compile() {
  local status total
  total="$(go list -deps "$@" 2>>"$log" | wc -l)"
  set +e
  go build -v -trimpath -ldflags "$ldflags" -o "$out.tmp/" "$@" 2>&1 \
    | tee -a "$log" \
    | awk -v total="$total" -v start="$(date +%s)" '{
        if (++n % 100) next
        "date +%s" | getline now; close("date +%s")
        printf "  compiled %d of at most %d packages (%d%%), %d s\n", n, total, total ? 100 * n / total : 0, now - start
        fflush() }' >&2
  status=${PIPESTATUS[0]}
  set -e
  if [[ $status != 0 ]]; then
    echo "error: go build of the local control plane failed; log: $log (last lines below)" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
}

if [[ $what == node ]]; then
  containerd_version="$(awk '$1=="github.com/containerd/containerd/v2"{print $2; exit}' "$here/node/go.mod")"
  echo "building the real node (kubelet and kube-proxy $k8s_version, containerd $containerd_version, CNI plugins)" >&2
  echo "  into $out; the first build takes 5-10 minutes on 2 cores; log: $log" >&2
  compile k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
  cd "$here/node"
  ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$containerd_version"
  compile github.com/containerd/containerd/v2/cmd/containerd \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    github.com/containerd/containerd/v2/cmd/ctr \
    github.com/containernetworking/plugins/plugins/main/bridge \
    github.com/containernetworking/plugins/plugins/ipam/host-local \
    github.com/containernetworking/plugins/plugins/main/loopback \
    github.com/containernetworking/plugins/plugins/meta/portmap \
    ./cmd/pause ./cmd/echo-server
elif [[ $what == prometheus ]]; then
  prometheus_version="$(awk '$1=="require" && $2=="github.com/prometheus/prometheus"{print $3; exit}' \
    "$here/prometheus/go.mod")"
  echo "building Prometheus (module $prometheus_version, Kubernetes service discovery only) for the tests" >&2
  echo "  into $out; the first build takes 4-8 minutes on 2 cores; log: $log" >&2
  cd "$here/prometheus"
  ldflags="-s -w -X github.com/prometheus/common/version.Version=$prometheus_version"
  compile -tags remove_all_sd,enable_kubernetes_sd github.com/prometheus/prometheus/cmd/prometheus
elif [[ $what == s3 ]]; then
  versitygw_version="$(awk '$1=="require" && $2=="github.com/versity/versitygw"{print $3; exit}' "$here/s3/go.mod")"
  echo "building the S3 server (versitygw $versitygw_version) for the real node's models" >&2
  echo "  into $out; the first build takes 2-4 minutes on 2 cores; log: $log" >&2
  cd "$here/s3"
  ldflags="-s -w"
  compile github.com/versity/versitygw/cmd/versitygw
elif [[ $what == checks ]]; then
  echo "building the checkers (kstatus, Flux's CEL health checks, Grafana's dashboard schema) for the tests" >&2
  echo "  into $out; the first build takes 1-3 minutes on 2 cores; log: $log" >&2
  cd "$here/checks"
  ldflags="-s -w"
  compile ./cmd/statuscheck ./cmd/dashboardcheck
elif [[ $what == dns ]]; then
  coredns_version="$(awk '$1=="require" && $2=="github.com/coredns/coredns"{print $3; exit}' "$here/dns/go.mod")"
  echo "building CoreDNS ($coredns_version, the kubernetes plugin only) for the real node's pods" >&2
  echo "  into $out; the first build takes 2-4 minutes on 2 cores; log: $log" >&2
  cd "$here/dns"
  ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns_version"
  compile ./cmd/coredns
else
  echo "building the local control plane (Kubernetes $k8s_version, kwok $kwok_version, helm $helm_version)" >&2
  echo "  into $out; the first build takes 15-30 minutes on 2 cores; log: $log" >&2
  compile k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl \
    sigs.k8s.io/kwok/cmd/kwok \
    sigs.k8s.io/kwok/cmd/kwokctl \
    helm.sh/helm/v3/cmd/helm \
    ./cmd/etcd
fi
for t in "${tools[@]}"; do
  if [[ ! -x "$out.tmp/$t" ]]; then
    echo "error: building $t failed; see $log (last lines below)" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
done
rm -rf "$out"
mv "$out.tmp" "$out"
echo "  built in $((SECONDS - start)) s" >&2
echo "$out"
