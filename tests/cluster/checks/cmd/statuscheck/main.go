// statuscheck reads Kubernetes objects (a JSON array) on stdin and prints, for each, what the
// libraries GitOps tools use make of it, so the tests judge the operator's statuses with those
// libraries rather than with a re-implementation:
//
//   - kstatus: sigs.k8s.io/cli-utils' status.Compute (kubectl's and kpt's kstatus);
//   - flux: github.com/fluxcd/cli-utils' status.Compute, the fork Flux's kustomize-controller
//     uses for `wait: true` and `healthChecks`;
//   - cel: Flux's own CEL health-check evaluator (github.com/fluxcd/pkg/runtime/cel, as for
//     `spec.healthCheckExprs`), when -current is given, with -failed and -in-progress.
//
// It prints one JSON object per input object, in order: {"name", "kstatus", "kstatusMessage",
// "flux", "cel", "celError"}. A failed expression evaluation is reported, not fatal: Flux
// treats it as a failed health check, and the tests want to see it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kjson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Name           string `json:"name"`
	Kstatus        string `json:"kstatus"`
	KstatusMessage string `json:"kstatusMessage"`
	Flux           string `json:"flux"`
	CEL            string `json:"cel,omitempty"`
	CELError       string `json:"celError,omitempty"`
}

func main() {
	var exprs kustomize.HealthCheckExpressions
	flag.StringVar(&exprs.Current, "current", "", "Flux healthCheckExprs 'current' expression")
	flag.StringVar(&exprs.Failed, "failed", "", "Flux healthCheckExprs 'failed' expression")
	flag.StringVar(&exprs.InProgress, "in-progress", "", "Flux healthCheckExprs 'inProgress' expression")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, exprs); err != nil {
		fmt.Fprintln(os.Stderr, "statuscheck:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, exprs kustomize.HealthCheckExpressions) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	// apimachinery's decoder, as the API machinery itself uses: integers stay int64, which kstatus's
	// accessors require (encoding/json would make generation a float64).
	var objects []map[string]any
	if err := kjson.Unmarshal(data, &objects); err != nil {
		return fmt.Errorf("stdin must be a JSON array of objects: %w", err)
	}
	var evaluator *cel.StatusEvaluator
	if exprs.Current != "" {
		// Flux refuses a Kustomization whose expressions do not parse: so does this.
		if evaluator, err = cel.NewStatusEvaluator(&exprs); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(out)
	for _, obj := range objects {
		u := &unstructured.Unstructured{Object: obj}
		v := verdict{Name: u.GetName()}
		res, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("kstatus of %s: %w", u.GetName(), err)
		}
		v.Kstatus, v.KstatusMessage = res.Status.String(), res.Message
		fres, err := fluxstatus.Compute(u)
		if err != nil {
			return fmt.Errorf("flux kstatus of %s: %w", u.GetName(), err)
		}
		v.Flux = fres.Status.String()
		if evaluator != nil {
			if cres, err := evaluator.Evaluate(context.Background(), u); err != nil {
				v.CELError = err.Error()
			} else {
				v.CEL = cres.Status.String()
			}
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}
