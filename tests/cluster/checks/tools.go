// The status checker the GitOps tests run (cmd/statuscheck), built by `build.sh checks`.
package checks
