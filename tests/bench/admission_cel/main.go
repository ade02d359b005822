// admission_cel: what a Session create's admission CEL costs, in kube-apiserver's own CEL
// library (k8s.io/apiserver at the control plane's version), as the API server evaluates
// a webhook's or a policy's matchConditions: the activation (the request converted, the
// object, the parameter) and then each expression. Driven by tests/bench/bench_admission_cel.py.
//
// Input (a JSON file): {"object", "params", "iterations", "repeats", "sets": [{"name",
// "kind": "webhook"|"policy", "conditions": [{"name", "expression"}], "variables"}]}.
// Output (stdout, JSON): per set, the median and best microseconds per evaluation over
// the repeats (the sets take turns, so drift hits all alike), the bytes allocated per
// evaluation, and whether the conditions matched.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/cel/environment"
)

type set struct {
	Name       string              `json:"name"`
	Kind       string              `json:"kind"`
	Conditions []map[string]string `json:"conditions"`
	Variables  []map[string]string `json:"variables"`
}

type input struct {
	Object     map[string]any `json:"object"`
	Params     map[string]any `json:"params"`
	Sets       []set          `json:"sets"`
	Iterations int            `json:"iterations"`
	Repeats    int            `json:"repeats"`
}

type result struct {
	Name       string  `json:"name"`
	MedianUs   float64 `json:"median_us"`
	BestUs     float64 `json:"best_us"`
	AllocBytes float64 `json:"alloc_bytes"`
	Matches    bool    `json:"matches"`
	Error      string  `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fail(fmt.Errorf("usage: admission_cel <input.json>"))
	}
	raw, err := os.ReadFile(os.Args[1])
	fail(err)
	var in input
	fail(json.Unmarshal(raw, &in))

	obj := &unstructured.Unstructured{Object: in.Object}
	params := &unstructured.Unstructured{Object: in.Params}
	gvk := schema.GroupVersionKind{Group: "ambient.ai", Version: "v1alpha1", Kind: "Session"}
	gvr := schema.GroupVersionResource{Group: "ambient.ai", Version: "v1alpha1", Resource: "sessions"}
	attr := admission.NewAttributesRecord(obj, nil, gvk, obj.GetNamespace(), obj.GetName(), gvr, "",
		admission.Create, &metav1.CreateOptions{FieldManager: "bench"}, false,
		&user.DefaultInfo{Name: "bench", UID: "u-1", Groups: []string{"system:authenticated", "bench"}})
	versioned := &admission.VersionedAttributes{Attributes: attr, VersionedObject: obj, VersionedKind: gvk}
	allow := authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
	failClosed := admissionregistrationv1.Fail
	base := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	webhooks := cel.NewConditionCompiler(base)
	ctx := context.Background()

	type compiled struct {
		result
		match func() matchconditions.MatchResult
		times []float64
	}
	var all []*compiled
	for _, s := range in.Sets {
		exprs := make([]cel.ExpressionAccessor, len(s.Conditions))
		for i, c := range s.Conditions {
			exprs[i] = &matchconditions.MatchCondition{Name: c["name"], Expression: c["expression"]}
		}
		c := &compiled{result: result{Name: s.Name}}
		switch s.Kind {
		case "policy": // as validating.compilePolicy compiles a policy's matchConditions
			template, err := cel.NewCompositionEnv(cel.VariablesTypeName, base)
			fail(err)
			compiler := cel.NewCompositedCompilerFromTemplate(template)
			variables := make([]cel.NamedExpressionAccessor, len(s.Variables))
			for i, v := range s.Variables {
				variables[i] = &validating.Variable{Name: v["name"], Expression: v["expression"]}
			}
			opts := cel.OptionalVariableDeclarations{HasParams: true, HasAuthorizer: true}
			compiler.CompileAndStoreVariables(variables, opts, environment.StoredExpressions)
			m := matchconditions.NewMatcher(compiler.CompileCondition(exprs, opts, environment.StoredExpressions),
				&failClosed, "policy", "validate", s.Name)
			c.match = func() matchconditions.MatchResult { return m.Match(ctx, versioned, params, allow) }
		case "webhook": // as a webhook accessor compiles its matchConditions
			opts := cel.OptionalVariableDeclarations{HasParams: false, HasAuthorizer: true}
			m := matchconditions.NewMatcher(webhooks.CompileCondition(exprs, opts, environment.StoredExpressions),
				&failClosed, "webhook", "validating", s.Name)
			c.match = func() matchconditions.MatchResult { return m.Match(ctx, versioned, nil, allow) }
		default:
			fail(fmt.Errorf("set %q: kind %q is neither webhook nor policy", s.Name, s.Kind))
		}
		first := c.match()
		if first.Error != nil {
			c.Error = first.Error.Error()
		}
		c.Matches = first.Matches
		all = append(all, c)
	}
	var before, after runtime.MemStats
	for _, c := range all {
		if c.Error != "" {
			continue
		}
		runtime.ReadMemStats(&before)
		for i := 0; i < in.Iterations; i++ {
			c.match()
		}
		runtime.ReadMemStats(&after)
		c.AllocBytes = float64(after.TotalAlloc-before.TotalAlloc) / float64(in.Iterations)
	}
	for r := 0; r < in.Repeats; r++ {
		for _, c := range all {
			if c.Error != "" {
				continue
			}
			start := time.Now()
			for i := 0; i < in.Iterations; i++ {
				c.match()
			}
			c.times = append(c.times, float64(time.Since(start).Nanoseconds())/float64(in.Iterations)/1000)
		}
	}
	out := make([]result, 0, len(all))
	for _, c := range all {
		if len(c.times) > 0 {
			sort.Float64s(c.times)
			c.MedianUs, c.BestUs = c.times[len(c.times)/2], c.times[0]
		}
		out = append(out, c.result)
	}
	fail(json.NewEncoder(os.Stdout).Encode(out))
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "admission_cel:", err)
		os.Exit(1)
	}
}
