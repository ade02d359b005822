// Command crd_rules times the API server's own CEL validation of one Session status write:
// the CRD's x-kubernetes-validations run on (new, old) as kube-apiserver runs them, with
// the apiextensions-apiserver of the control plane's Kubernetes version.
//
//	crd_rules <crd.yaml> <old.json> <new.json> <iterations>
//
// Prints the errors of one validation (none expected), then the process CPU time per
// validation, the best of five batches (GC included: the API server pays it too).
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	kjson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "crd_rules:", err)
		os.Exit(1)
	}
}

func load(path string) map[string]interface{} {
	raw, err := os.ReadFile(path)
	must(err)
	var obj map[string]interface{}
	must(kjson.Unmarshal(raw, &obj)) // int64 numbers, as the API server decodes them
	return obj
}

func cpu() time.Duration {
	var ru syscall.Rusage
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: crd_rules <crd.yaml> <old.json> <new.json> <iterations>")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	must(err)
	var crd apiextensionsv1.CustomResourceDefinition
	must(yaml.Unmarshal(raw, &crd))
	var internal apiextensions.JSONSchemaProps
	must(apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(
		crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &internal, nil))
	structural, err := schema.NewStructural(&internal)
	must(err)
	validator := cel.NewValidator(structural, true, celconfig.PerCallLimit)
	oldObj, newObj := load(os.Args[2]), load(os.Args[3])
	n, err := strconv.Atoi(os.Args[4])
	must(err)
	validate := func() field.ErrorList {
		errs, _ := validator.Validate(context.TODO(), field.NewPath(""), structural, newObj, oldObj,
			celconfig.RuntimeCELCostBudget)
		return errs
	}
	if errs := validate(); len(errs) > 0 {
		fmt.Println("errors:", errs.ToAggregate())
		os.Exit(1)
	}
	best := time.Duration(1 << 62)
	for batch := 0; batch < 5; batch++ {
		start := cpu()
		for i := 0; i < n; i++ {
			validate()
		}
		if spent := cpu() - start; spent < best {
			best = spent
		}
	}
	fmt.Printf("%.1f\n", float64(best.Nanoseconds())/float64(n)/1000)
}
