//go:build tools

// Package tools pins the S3 server the real node's models are fetched from:
// the Versity S3 Gateway (Apache 2.0) on its posix backend, which checks
// request signatures as S3 does, so wrong credentials fail as they would
// against a real bucket. A module of its own, so its dependencies never move
// the control plane's versions.
package tools

import (
	_ "github.com/versity/versitygw/cmd/versitygw"
)
