//go:build tools

// Package tools pins what the local control plane's real node runs beside the
// kubelet: containerd with its runc shim and ctr, and the CNI plugins that
// give pods their addresses. (kubelet and kube-proxy come from the Kubernetes
// module one folder up.) A module of its own, so containerd's dependencies
// never move the versions the Kubernetes components are built with.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)
