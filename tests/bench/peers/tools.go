//go:build tools

// Package peers pins the controllers `make bench-peers` races modeldeploy
// against, so go.mod and go.sum record their exact versions.
package peers

import (
	_ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
)
