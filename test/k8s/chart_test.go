// Package k8s validates the Helm chart (helm/stockcast) and the plain
// manifests (deploy/k8s): every rendered object strict-decodes into the
// Kubernetes API types, and a real kube-apiserver backed by etcd accepts
// every object (server-side apply with fieldValidation=Strict), after which
// the Deployments exist. Run by `make test-k8s`, which builds kube-apiserver
// into bin/ and installs etcd-server and helm.
package k8s

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	chartDir    = "../../helm/stockcast"
	manifests   = "../../deploy/k8s/stockcast.yaml"
	crdDir      = "crds"
	release     = "stockcast"
	namespace   = "stockcast"
	serviceList = "ingest feature forecast replenishment"
)

// crdKinds are the kinds the chart may render that no built-in API serves.
var crdKinds = map[schema.GroupVersionKind]bool{
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}: true,
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}: true,
	{Group: "kafka.strimzi.io", Version: "v1beta2", Kind: "KafkaTopic"}:     true,
}

// variants are the value sets rendered and applied: the defaults and every
// option switched on.
var variants = []struct {
	name string
	set  []string
}{
	{name: "defaults"},
	{name: "all-options", set: []string{
		"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true",
		"topics.mode=strimzi", "kafka.replicationFactor=3",
		"tls.enabled=true", "tls.secretName=stockcast-grpc-tls", "tls.clientCA=true",
		"secrets.existingSecret=stockcast-credentials", "autoscaling.enabled=false",
		"networkPolicy.metricsFrom[0].kubernetes\\.io/metadata\\.name=monitoring",
		"imagePullSecrets[0].name=registry",
	}},
	{name: "no-topics-no-policies", set: []string{"topics.mode=none", "networkPolicy.enabled=false", "podDisruptionBudget.enabled=false"}},
}

func tool(t *testing.T, env, def string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = def
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("%s not found (%v): run `make test-k8s`, which installs it", abs, err)
	}
	return abs
}

func render(t *testing.T, set []string) []byte {
	t.Helper()
	helm := tool(t, "HELM", "../../bin/tools/helm")
	args := []string{"template", release, chartDir, "--namespace", namespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, out)
	}
	return out
}

// splitDocs returns the non-empty YAML documents of a multi-document stream.
func splitDocs(t *testing.T, data []byte) [][]byte {
	t.Helper()
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("split yaml: %v", err)
		}
		var m map[string]any
		if err := sigsyaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("parse yaml document: %v\n%s", err, doc)
		}
		if len(m) > 0 {
			docs = append(docs, doc)
		}
	}
}

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// strictDecode decodes every document into its API type, failing on unknown
// or duplicate fields; CRD-backed kinds must be ones the test installs.
func strictDecode(t *testing.T, docs [][]byte) []*unstructured.Unstructured {
	t.Helper()
	dec := serializer.NewCodecFactory(newScheme(t), serializer.EnableStrict).UniversalDeserializer()
	var objs []*unstructured.Unstructured
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("yaml: %v", err)
		}
		gvk := u.GroupVersionKind()
		if crdKinds[gvk] {
			objs = append(objs, u)
			continue
		}
		obj, got, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Errorf("%s %s: strict decode: %v", gvk.Kind, u.GetName(), err)
			continue
		}
		if *got != gvk {
			t.Errorf("%s: decoded as %v", u.GetName(), got)
		}
		if _, isUnstructured := obj.(runtime.Unstructured); isUnstructured {
			t.Errorf("%s %s: no typed API for %v", gvk.Kind, u.GetName(), gvk)
		}
		objs = append(objs, u)
	}
	return objs
}

func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	bad := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n")
	dec := serializer.NewCodecFactory(newScheme(t), serializer.EnableStrict).UniversalDeserializer()
	if _, _, err := dec.Decode(bad, nil, nil); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("strict decode of spec.replica: %v, want an unknown field error", err)
	}
}

func TestManifestsAreTheRenderedChart(t *testing.T) {
	// deploy/k8s is rendered without --namespace (kubectl apply -n picks it).
	helm := tool(t, "HELM", "../../bin/tools/helm")
	plain, err := exec.Command(helm, "template", release, chartDir).Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(manifests)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Fatalf("%s differs from the rendered chart: run `make manifests`", manifests)
	}
}

func TestChartRendersAndDecodes(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			objs := strictDecode(t, splitDocs(t, render(t, v.set)))
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
			}
			if kinds["Deployment"] != 4 || kinds["Service"] != 4 {
				t.Fatalf("rendered %v, want 4 Deployments and 4 Services", kinds)
			}
			for _, o := range objs {
				if o.GetKind() != "Deployment" {
					continue
				}
				var d appsv1.Deployment
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
					t.Fatal(err)
				}
				checkHardened(t, &d)
			}
		})
	}
}

// checkHardened asserts the pod security the issue asks for.
func checkHardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: pod not runAsNonRoot", d.Name)
	}
	for _, c := range ps.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("%s/%s: securityContext %+v", d.Name, c.Name, sc)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.StartupProbe == nil {
			t.Errorf("%s/%s: missing probes", d.Name, c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: resources %+v", d.Name, c.Name, c.Resources)
		}
	}
}
