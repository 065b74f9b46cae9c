// Command echo-server is a small HTTP server for tests on the local control plane's real
// node: every answer says which pod and which version served it, so a test measures the
// traffic split clients see. GET /healthz answers 200 once the server listens.
//
// Environment: PORT (default 8080), MODEL_VERSION (the operator sets it on every model server),
// POD_NAME (from the downward API).
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	answer := map[string]string{"pod": os.Getenv("POD_NAME"), "version": os.Getenv("MODEL_VERSION")}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	})
	log.Printf("echo-server listening on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
