//go:build tools

// Package tools pins the Prometheus server the tests run: built with only its
// Kubernetes service discovery (tags remove_all_sd,enable_kubernetes_sd), so the
// tests scrape model servers as a platform's Prometheus finds them. Debian's
// package is built without Kubernetes discovery. A module of its own, so
// Prometheus's dependencies never move the control plane's versions.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
