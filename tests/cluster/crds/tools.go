//go:build tools

// Package crds pins the modules whose CRD manifests the tests install.
package crds

import (
	_ "istio.io/api/networking/v1"
	_ "sigs.k8s.io/gateway-api/apis/v1"
)
