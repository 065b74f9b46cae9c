// dashboardcheck reads a Grafana dashboard (JSON) on stdin and checks it against Grafana's own
// dashboard schema, as the Grafana Foundation SDK generates it from Grafana's schema: a strict
// decode (an unknown or mistyped field anywhere is an error) and the schema's constraints.
// With the panel plugins registered, each panel's options and each Prometheus query are decoded
// by their own schemas too.
//
// It prints one JSON line per Prometheus query, {"panel", "refId", "expr"}, so the tests can run
// every query on a real Prometheus, and exits 1 with the schema's errors otherwise.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// failed says whether err holds an error: the SDK can return an empty list of errors as a non-nil error.
func failed(err error) bool {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		return len(list) > 0
	}
	return err != nil
}

type query struct {
	Panel string `json:"panel"`
	RefID string `json:"refId"`
	Expr  string `json:"expr"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dashboardcheck:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	plugins.RegisterDefaultPlugins()
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var d dashboard.Dashboard
	if err := d.UnmarshalJSONStrict(raw); failed(err) {
		return fmt.Errorf("not a dashboard by Grafana's schema: %w", err)
	}
	if err := d.Validate(); failed(err) {
		return fmt.Errorf("the dashboard breaks Grafana's schema: %w", err)
	}
	// Each panel, and each of its queries, is decoded again on its own: the SDK's decoders for "a panel or a
	// row" and for "a query of some datasource" take an empty error list for an error and drop what they
	// decoded, so d.Panels holds neither panels nor queries to read.
	var doc struct {
		Panels []struct {
			Type    string            `json:"type"`
			Title   string            `json:"title"`
			Targets []json.RawMessage `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for i, p := range doc.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			return fmt.Errorf("panels[%d] (%q) has no query", i, p.Title)
		}
		for j, rawTarget := range p.Targets {
			var q prometheus.Dataquery
			if err := q.UnmarshalJSONStrict(rawTarget); failed(err) {
				return fmt.Errorf("panels[%d].targets[%d] is not a Prometheus query by its schema: %w", i, j, err)
			}
			if err := q.Validate(); failed(err) {
				return fmt.Errorf("panels[%d].targets[%d]: %w", i, j, err)
			}
			ref := ""
			if q.RefId != nil {
				ref = *q.RefId
			}
			if err := enc.Encode(query{Panel: p.Title, RefID: ref, Expr: q.Expr}); err != nil {
				return err
			}
		}
	}
	return nil
}
