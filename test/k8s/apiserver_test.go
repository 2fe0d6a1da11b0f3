//go:build apiserver

package k8s

// TestApplyToAPIServer needs bin/kube-apiserver and etcd: `make test-k8s`
// builds the one, installs the other and runs it with -tags apiserver.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// ---- the real API server ----

type cluster struct {
	cfg *rest.Config
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs cmd until the test ends, its output in the test log on failure.
func start(t *testing.T, name string, cmd *exec.Cmd) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			if len(out) > 8000 {
				out = out[len(out)-8000:]
			}
			t.Logf("%s log (tail):\n%s", name, out)
		}
		logf.Close()
	})
}

func waitHTTP(t *testing.T, what string, timeout time.Duration, get func() (int, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		code, err := get()
		if err == nil && code == http.StatusOK {
			return
		}
		last = fmt.Sprintf("status %d, err %v", code, err)
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s: %s", what, timeout, last)
}

// startCluster starts etcd and kube-apiserver on free loopback ports.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	etcdBin := tool(t, "ETCD", "/usr/bin/etcd")
	apiserverBin := tool(t, "KUBE_APISERVER", "../../bin/kube-apiserver")
	dir := t.TempDir()

	clientURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	start(t, "etcd", exec.Command(etcdBin,
		"--name", "stockcast-test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "stockcast-test="+peerURL,
		"--unsafe-no-fsync", "--quota-backend-bytes", strconv.Itoa(1<<30)))
	waitHTTP(t, "etcd", 60*time.Second, func() (int, error) {
		resp, err := http.Get(clientURL + "/health")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	})

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "sa.key")
	pubFile := filepath.Join(dir, "sa.pub")
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	writeFile(t, pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	token := rand.Text()
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, []byte(token+",admin,admin,system:masters\n"))

	port := freePort(t)
	start(t, "kube-apiserver", exec.Command(apiserverBin,
		"--etcd-servers", clientURL,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", pubFile,
		"--service-account-signing-key-file", keyFile,
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--advertise-address", "127.0.0.1",
		"--endpoint-reconciler-type", "none", // no kubernetes Service endpoints for a loopback address
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	))
	cfg := &rest.Config{
		Host:            fmt.Sprintf("https://127.0.0.1:%d", port),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, // self-signed serving cert from --cert-dir
		QPS:             100, Burst: 200,
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitHTTP(t, "kube-apiserver", 3*time.Minute, func() (int, error) {
		req, _ := http.NewRequest(http.MethodGet, cfg.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	})
	return &cluster{cfg: cfg}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// applier applies unstructured objects with server-side apply.
type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	reset  func()
}

func newApplier(t *testing.T, cfg *rest.Config) *applier {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cached := memory.NewMemCacheClient(dc)
	m := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: m, reset: m.Reset}
}

func (a *applier) apply(ctx context.Context, u *unstructured.Unstructured, dryRun bool) error {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("map %v: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = a.dyn.Resource(m.Resource).Namespace(namespace)
	}
	data, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: "stockcast-test", Force: ptr(true), FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, opts)
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, u.GetName(), err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strictDecode(t, splitDocs(t, data))
}

func TestApplyToAPIServer(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs, err := kubernetes.NewForConfig(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := newApplier(t, c.cfg)

	// CRDs of the optional kinds, then wait until they are served.
	entries, err := os.ReadDir(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		for _, u := range readObjects(t, filepath.Join(crdDir, e.Name())) {
			if err := a.apply(ctx, u, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, ctx, "the CRDs to be served", func() bool {
		a.reset()
		for gvk := range crdKinds {
			if _, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				return false
			}
		}
		return true
	})

	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespace}}}
	if err := a.apply(ctx, ns, false); err != nil {
		t.Fatal(err)
	}

	// The API server rejects what it does not know: the validation can fail.
	bad := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
		"metadata": map[string]any{"name": "typo"},
		"spec":     map[string]any{"selector": map[string]any{}, "endpoints": []any{map[string]any{"prot": "admin"}}}}}
	if err := a.apply(ctx, bad, true); err == nil || !strings.Contains(err.Error(), ".spec.endpoints[0].prot: field not declared in schema") {
		t.Fatalf("applying a ServiceMonitor with an unknown field: %v, want it rejected", err)
	}
	badDep := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "bad"},
		"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"a": "b"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"a": "c"}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "i"}}}}}}}
	if err := a.apply(ctx, badDep, true); !apierrors.IsInvalid(err) {
		t.Fatalf("applying a Deployment whose selector does not match its pods: %v, want Invalid", err)
	}

	// Server-side dry run of every variant, then the plain manifests for real.
	for _, v := range variants {
		for _, u := range strictDecode(t, splitDocs(t, render(t, v.set))) {
			if err := a.apply(ctx, u, true); err != nil {
				t.Errorf("variant %s: %v", v.name, err)
			}
		}
	}
	objs := readObjects(t, manifests)
	// The chart renders a hook Job; deploy/k8s carries it too.
	for _, u := range objs {
		if err := a.apply(ctx, u, false); err != nil {
			t.Errorf("deploy/k8s: %v", err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	for _, name := range strings.Fields(serviceList) {
		d, err := cs.AppsV1().Deployments(namespace).Get(ctx, release+"-"+name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("deployment %s: %v", name, err)
		}
		checkHardened(t, d)
		if sum := d.Spec.Template.Annotations["checksum/secret"]; len(sum) != 64 {
			t.Errorf("%s: checksum/secret %q, want a sha256 (pods restart when a Secret changes)", d.Name, sum)
		}
		if d.Spec.Template.Spec.ServiceAccountName != release+"-stockcast" {
			t.Errorf("%s runs as %q", d.Name, d.Spec.Template.Spec.ServiceAccountName)
		}
		if _, err := cs.CoreV1().Services(namespace).Get(ctx, d.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("service %s: %v", d.Name, err)
		}
		if _, err := cs.PolicyV1().PodDisruptionBudgets(namespace).Get(ctx, d.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("pdb %s: %v", d.Name, err)
		}
		h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("hpa %s: %v", d.Name, err)
		} else if h.Spec.MaxReplicas != 6 {
			t.Errorf("hpa %s: maxReplicas %d, want the partition count 6", d.Name, h.Spec.MaxReplicas)
		}
		if _, err := cs.NetworkingV1().NetworkPolicies(namespace).Get(ctx, d.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("networkpolicy %s: %v", d.Name, err)
		}
	}
	if _, err := cs.BatchV1().Jobs(namespace).Get(ctx, release+"-stockcast-topics", metav1.GetOptions{}); err != nil {
		t.Errorf("topics job: %v", err)
	}
	// The schema migration hook Jobs: each service's image with -migrate-only.
	for _, name := range strings.Fields(migrated) {
		j, err := cs.BatchV1().Jobs(namespace).Get(ctx, release+"-"+name+"-migrate", metav1.GetOptions{})
		if err != nil {
			t.Errorf("migration job %s: %v", name, err)
			continue
		}
		checkHardenedPod(t, j.Name, &j.Spec.Template.Spec, false)
		c := j.Spec.Template.Spec.Containers[0]
		if want := "ghcr.io/stockcast/stockcast-" + name + ":"; !strings.HasPrefix(c.Image, want) || strings.Join(c.Args, " ") != "-migrate-only" {
			t.Errorf("migration job %s runs %s %v, want %s* -migrate-only", name, c.Image, c.Args, want)
		}
		if j.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" {
			t.Errorf("migration job %s: hook %q", name, j.Annotations["helm.sh/hook"])
		}
	}
	// The training CronJob writes to the models PVC.
	cj, err := cs.BatchV1().CronJobs(namespace).Get(ctx, release+"-stockcast-train", metav1.GetOptions{})
	if err != nil {
		t.Errorf("training cronjob: %v", err)
	} else {
		ps := cj.Spec.JobTemplate.Spec.Template.Spec
		checkHardenedPod(t, cj.Name, &ps, false)
		if got := strings.Join(ps.Containers[0].Args, " "); got != "train -data=clickhouse -registry=on -out=/models" {
			t.Errorf("training cronjob args %q", got)
		}
		if cj.Spec.Schedule != "30 2 * * *" || cj.Spec.ConcurrencyPolicy != "Forbid" {
			t.Errorf("training cronjob schedule %q policy %q", cj.Spec.Schedule, cj.Spec.ConcurrencyPolicy)
		}
		var claim string
		for _, v := range ps.Volumes {
			if v.PersistentVolumeClaim != nil {
				claim = v.PersistentVolumeClaim.ClaimName
			}
		}
		if _, err := cs.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, claim, metav1.GetOptions{}); err != nil || claim != release+"-stockcast-models" {
			t.Errorf("training cronjob's claim %q: %v", claim, err)
		}
		// forecast loads the champion from the same volume, read-only.
		fc, err := cs.AppsV1().Deployments(namespace).Get(ctx, release+"-forecast", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var mounted bool
		for _, v := range fc.Spec.Template.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim && v.PersistentVolumeClaim.ReadOnly {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("forecast does not mount the models claim %q read-only", claim)
		}
	}
	// The console: Deployment, Service, PDB, NetworkPolicy, users Secret.
	con, err := cs.AppsV1().Deployments(namespace).Get(ctx, release+"-console", metav1.GetOptions{})
	if err != nil {
		t.Errorf("console deployment: %v", err)
	} else {
		checkHardened(t, con)
		if con.Spec.Replicas == nil || *con.Spec.Replicas != 1 {
			t.Errorf("console replicas %v, want 1 (sessions are in memory)", con.Spec.Replicas)
		}
		env := map[string]string{}
		for _, e := range con.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		if want := "feature=stockcast-feature:9464,forecast=stockcast-forecast:9464,ingest=stockcast-ingest:9464,replenishment=stockcast-replenishment:9464"; env["STOCKCAST_CONSOLE_ADMINS"] != want {
			t.Errorf("console admins %q, want %q", env["STOCKCAST_CONSOLE_ADMINS"], want)
		}
		if env["STOCKCAST_REPORTS_DIR"] != "/var/lib/stockcast/reports" {
			t.Errorf("console reports dir %q", env["STOCKCAST_REPORTS_DIR"])
		}
		var reportsVol bool
		for _, v := range con.Spec.Template.Spec.Volumes {
			reportsVol = reportsVol || (v.Name == "reports" && v.EmptyDir != nil)
		}
		if !reportsVol {
			t.Errorf("console: no emptyDir reports volume in %+v", con.Spec.Template.Spec.Volumes)
		}
		if sum := con.Spec.Template.Annotations["checksum/secret"]; len(sum) != 64 {
			t.Errorf("console: checksum/secret %q", sum)
		}
		if env["STOCKCAST_FORECAST_ADDR"] != "stockcast-forecast:9090" || env["STOCKCAST_REPLENISHMENT_ADDR"] != "stockcast-replenishment:9090" {
			t.Errorf("console upstreams %q %q", env["STOCKCAST_FORECAST_ADDR"], env["STOCKCAST_REPLENISHMENT_ADDR"])
		}
		for _, get := range []func() error{
			func() error {
				_, err := cs.CoreV1().Services(namespace).Get(ctx, con.Name, metav1.GetOptions{})
				return err
			},
			func() error {
				_, err := cs.PolicyV1().PodDisruptionBudgets(namespace).Get(ctx, con.Name, metav1.GetOptions{})
				return err
			},
			func() error {
				_, err := cs.NetworkingV1().NetworkPolicies(namespace).Get(ctx, con.Name, metav1.GetOptions{})
				return err
			},
			func() error {
				_, err := cs.CoreV1().Secrets(namespace).Get(ctx, release+"-console-users", metav1.GetOptions{})
				return err
			},
		} {
			if err := get(); err != nil {
				t.Errorf("console: %v", err)
			}
		}
		if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(namespace).Get(ctx, con.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("console hpa: %v, want none", err)
		}
	}
	cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, release+"-stockcast-env", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["STOCKCAST_FEATURE_ADDR"] != release+"-feature:9090" {
		t.Errorf("STOCKCAST_FEATURE_ADDR = %q", cm.Data["STOCKCAST_FEATURE_ADDR"])
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
