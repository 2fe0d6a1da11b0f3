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
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
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
	// migrated are the services with ClickHouse tables: a -migrate-only
	// hook Job each.
	migrated = "ingest forecast replenishment"
)

// crdKinds are the kinds the chart may render that no built-in API serves.
var crdKinds = map[schema.GroupVersionKind]bool{
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}: true,
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}: true,
	{Group: "kafka.strimzi.io", Version: "v1beta2", Kind: "KafkaTopic"}:     true,
	{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}:           true,
}

// variants are the value sets rendered and applied: the defaults and every
// option switched on.
var variants = []struct {
	name string
	set  []string
	want map[string]int // kinds that must be rendered this many times
}{
	{name: "defaults", want: map[string]int{
		"Deployment": 5, "Service": 5, "HorizontalPodAutoscaler": 4, "PodDisruptionBudget": 5, "NetworkPolicy": 5,
		"Job": 4, "CronJob": 1, "PersistentVolumeClaim": 1, "Secret": 3, "ScaledObject": 0,
	}},
	{name: "all-options", set: []string{
		"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true",
		"topics.mode=strimzi", "kafka.replicationFactor=3",
		"tls.enabled=true", "tls.secretName=stockcast-grpc-tls", "tls.clientCA=true",
		"secrets.existingSecret=stockcast-credentials", "keda.enabled=true",
		"networkPolicy.metricsFrom[0].kubernetes\\.io/metadata\\.name=monitoring",
		"console.httpFrom[0].kubernetes\\.io/metadata\\.name=ingress",
		"console.usersSecret=console-users", "training.artefacts.existingClaim=models",
		"training.timeZone=Europe/Berlin", "training.args={-top,500,-rounds,300}",
		"imagePullSecrets[0].name=registry",
		"grpcAuth.enabled=true", "grpcAuth.existingSecret=grpc-tokens", "grpcAuth.methodRoles.feature=*=forecast|admin",
		"console.httpTLS.secretName=console-https", "console.reports.schedule=06:00", "console.reports.existingClaim=console-reports",
		"console.oidc.issuer=https://idp.example.com", "console.oidc.clientID=stockcast",
		"console.oidc.redirectURL=https://console.example.com/api/oidc/callback", "console.oidc.roles={ops@example.com=admin}",
		"console.oidc.existingSecret=console-oidc", "console.egress.enabled=true",
		"console.egress.kafkaTo[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=kafka",
		"console.egress.extra[0].ports[0].port=4317",
	}, want: map[string]int{
		"Deployment": 5, "Service": 5, "HorizontalPodAutoscaler": 0, "ScaledObject": 4, "KafkaTopic": 15,
		"Job": 3, "CronJob": 1, "PersistentVolumeClaim": 0, "Secret": 0,
	}},
	// The Secrets the chart creates for tokens and OIDC.
	{name: "chart-secrets", set: append([]string{"console.oidc.issuer=https://idp.example.com", "console.oidc.clientID=stockcast",
		"console.oidc.redirectURL=https://console.example.com/api/oidc/callback", "console.oidc.clientSecret=s3cret"}, authValues...),
		want: map[string]int{"Deployment": 5, "Secret": 5}},
	{name: "no-topics-no-policies", set: []string{"topics.mode=none", "networkPolicy.enabled=false", "podDisruptionBudget.enabled=false",
		"migrations.enabled=false", "training.enabled=false", "console.enabled=false", "autoscaling.enabled=false"},
		want: map[string]int{
			"Deployment": 4, "Service": 4, "HorizontalPodAutoscaler": 0, "PodDisruptionBudget": 0, "NetworkPolicy": 0,
			"Job": 0, "CronJob": 0, "Secret": 1,
		}},
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
			for kind, n := range v.want {
				if kinds[kind] != n {
					t.Errorf("rendered %d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
				}
			}
			for _, o := range objs {
				switch o.GetKind() {
				case "Deployment":
					var d appsv1.Deployment
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
						t.Fatal(err)
					}
					checkHardened(t, &d)
				case "Job":
					var j batchv1.Job
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &j); err != nil {
						t.Fatal(err)
					}
					checkHardenedPod(t, j.Name, &j.Spec.Template.Spec, false)
				case "NetworkPolicy":
					var np networkingv1.NetworkPolicy
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &np); err != nil {
						t.Fatal(err)
					}
					checkConsoleScrapes(t, v.name, &np)
				case "CronJob":
					var c batchv1.CronJob
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &c); err != nil {
						t.Fatal(err)
					}
					checkHardenedPod(t, c.Name, &c.Spec.JobTemplate.Spec.Template.Spec, false)
				}
			}
		})
	}
}

// checkHardened asserts the pod security the issue asks for.
func checkHardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	checkHardenedPod(t, d.Name, &d.Spec.Template.Spec, true)
}

// checkHardenedPod checks a pod template: non-root, read-only root fs, no
// privilege escalation, drop ALL, no service account token, requests and a
// memory limit, and (for long-running pods) the three probes.
func checkHardenedPod(t *testing.T, name string, ps *corev1.PodSpec, probes bool) {
	t.Helper()
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: pod not runAsNonRoot", name)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Errorf("%s: service account token mounted", name)
	}
	for _, c := range ps.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("%s/%s: securityContext %+v", name, c.Name, sc)
		}
		if probes && (c.ReadinessProbe == nil || c.LivenessProbe == nil || c.StartupProbe == nil) {
			t.Errorf("%s/%s: missing probes", name, c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: resources %+v", name, c.Name, c.Resources)
		}
	}
}

// TestChartRejectsBadValues: values the chart cannot honour fail the render
// with a message naming them.
func TestChartRejectsBadValues(t *testing.T) {
	helm := tool(t, "HELM", "../../bin/tools/helm")
	for _, tt := range []struct {
		set  []string
		want string
	}{
		{[]string{"migrations.services={feature}"}, "migrations.services: feature owns no ClickHouse tables"},
		{[]string{"training.artefacts.create=false"}, "training.artefacts: set create=true or name an existingClaim"},
		{[]string{"topics.mode=kafka"}, "/topics/mode"},
		{[]string{"tls.enabled=true"}, "tls.secretName is required when tls.enabled"},
		// values.schema.json: the external endpoints and switches.
		{[]string{"kafka.brokers=kafka"}, "/kafka/brokers"},
		{[]string{"kafka.brokers=a:9092\\,b"}, "/kafka/brokers"},
		{[]string{"redis.addr=redis"}, "/redis/addr"},
		{[]string{"clickhouse.addr=http://ch:8123"}, "/clickhouse/addr"},
		{[]string{"clickhouse.database=stock-cast"}, "/clickhouse/database"},
		{[]string{"kafka.partitions=0"}, "/kafka/partitions"},
		{[]string{"console.replicas=2"}, "/console/replicas"},
		{[]string{"console.users={alice:root:hash}"}, "/console/users/0"},
		// grpcAuth, the console's reports, OIDC.
		{[]string{"grpcAuth.enabled=true"}, "grpcAuth.tokens: list the servers' token lines, or name grpcAuth.existingSecret"},
		{[]string{"grpcAuth.enabled=true", "grpcAuth.tokens={a b 0123456789abcdef}"}, "grpcAuth.featureToken: forecast's token for the feature service"},
		{[]string{"grpcAuth.enabled=true", "grpcAuth.tokens={a b 0123456789abcdef}", "grpcAuth.featureToken=x"}, "grpcAuth.consoleToken: the console's token"},
		{[]string{"grpcAuth.tokens={a b c;d e f}"}, "/grpcAuth/tokens/0"},
		{[]string{"grpcAuth.methodRoles.feature=forecast"}, "/grpcAuth/methodRoles/feature"},
		{[]string{"grpcAuth.methodRoles.console=*=admin"}, "additional properties 'console' not allowed"},
		{[]string{"console.reports.schedule=6am"}, "/console/reports/schedule"},
		{[]string{"console.reports.schedule=24:00"}, "/console/reports/schedule"},
		{[]string{"console.oidc.issuer=https://idp"}, "console.oidc: issuer needs clientID and redirectURL"},
		{[]string{"console.oidc.issuer=https://idp", "console.oidc.clientID=c", "console.oidc.redirectURL=https://c/api/oidc/callback"},
			"console.oidc.clientSecret or console.oidc.existingSecret is required"},
		{[]string{"console.oidc.redirectURL=https://c/callback"}, "/console/oidc/redirectURL"},
		{[]string{"console.oidc.roles={ops@example.com=root}"}, "/console/oidc/roles/0"},
	} {
		args := []string{"template", release, chartDir}
		for _, s := range tt.set {
			args = append(args, "--set", s)
		}
		out, err := exec.Command(helm, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("helm template --set %v: err %v, want an error with %q; output:\n%.400s", tt.set, err, tt.want, out)
		}
	}
}

// checkConsoleScrapes: when the admin ports are restricted to some
// namespaces, the console's pod may still reach them (it scrapes them).
func checkConsoleScrapes(t *testing.T, variant string, np *networkingv1.NetworkPolicy) {
	t.Helper()
	if np.Name == release+"-console" {
		return
	}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) != 1 || rule.Ports[0].Port.String() != "admin" || len(rule.From) == 0 {
			continue // the gRPC rule, or admin open to all
		}
		for _, peer := range rule.From {
			if peer.PodSelector != nil && peer.PodSelector.MatchLabels["app.kubernetes.io/name"] == "console" &&
				peer.PodSelector.MatchLabels["app.kubernetes.io/instance"] == release {
				return
			}
		}
		t.Errorf("variant %s: %s admits the admin port from %+v, not the console", variant, np.Name, rule.From)
	}
}
