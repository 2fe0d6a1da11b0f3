package k8s

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// checkMemLimit checks a container's GOMEMLIMIT: a size the Go runtime
// parses (bytes with an optional B, KiB, MiB, GiB or TiB suffix) below the
// container's memory limit, which the heap would otherwise be let to reach.
func checkMemLimit(t *testing.T, what, v string, c corev1.Container) {
	t.Helper()
	m := regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB|TiB)?$`).FindStringSubmatch(v)
	if m == nil {
		t.Errorf("%s: GOMEMLIMIT=%q is not a size the Go runtime reads", what, v)
		return
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	n <<= map[string]uint{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[2]]
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok || n >= limit.Value() {
		t.Errorf("%s: GOMEMLIMIT=%s (%d bytes) is not below the container's memory limit %v", what, v, n, c.Resources.Limits.Memory())
	}
}

// TestEnvReachesTheBinaries builds the five service binaries from the
// repository and runs each with exactly the environment a rendered pod gets
// (its ConfigMap, its env values, and the chart-created Secrets' values for
// secretKeyRef) and -config.print: every variable the pod template sets
// itself must be a flag of that binary and arrive with its value (secrets
// printed masked), and every ConfigMap key must be a flag of at least one
// service. This ties the chart's STOCKCAST_* names to the real flags.
func TestEnvReachesTheBinaries(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found: %v", err)
	}
	bin := t.TempDir()
	names := strings.Fields(serviceList + " console")
	args := []string{"build", "-o", bin + string(os.PathSeparator)}
	for _, n := range names {
		args = append(args, "./services/"+n+"/cmd/"+n)
	}
	args = append(args, "./cmd/stockcast")
	build := exec.Command(goBin, args...)
	build.Dir = "../.."
	// The test runs with GOWORK=off for its own module; the services build
	// in the repository's workspace.
	build.Env = append(os.Environ(), "GOWORK=", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	set := append([]string{
		"tls.enabled=true", "tls.secretName=grpc-tls", "tls.clientCA=true",
		"secrets.redisPassword=redis-pw", "secrets.clickhousePassword=ch-pw",
		"console.users={alice:admin:$2a$10$x}",
		"console.reports.schedule=06:30", "console.httpTLS.secretName=console-https",
		"console.oidc.issuer=https://idp.example.com", "console.oidc.clientID=stockcast",
		"console.oidc.redirectURL=https://console.example.com/api/oidc/callback",
		"console.oidc.roles={ops@example.com=admin}", "console.oidc.clientSecret=s3cret",
	}, authValues...)
	objs := strictDecode(t, splitDocs(t, render(t, set)))
	configMaps := map[string]map[string]string{}
	secrets := map[string]map[string]string{}
	type pod struct {
		what, binary string
		args         []string
		c            corev1.Container
	}
	var pods []pod
	var trainCronJob *corev1.Container
	for _, o := range objs {
		switch o.GetKind() {
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cm); err != nil {
				t.Fatal(err)
			}
			configMaps[cm.Name] = cm.Data
		case "Secret":
			var s corev1.Secret
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &s); err != nil {
				t.Fatal(err)
			}
			secrets[s.Name] = s.StringData
		case "Deployment":
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
				t.Fatal(err)
			}
			pods = append(pods, pod{"Deployment " + d.Name, strings.TrimPrefix(d.Name, release+"-"), nil, d.Spec.Template.Spec.Containers[0]})
		case "Job":
			var j batchv1.Job
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &j); err != nil {
				t.Fatal(err)
			}
			if n, ok := strings.CutSuffix(strings.TrimPrefix(j.Name, release+"-"), "-migrate"); ok {
				pods = append(pods, pod{"Job " + j.Name, n, j.Spec.Template.Spec.Containers[0].Args, j.Spec.Template.Spec.Containers[0]})
			}
		case "CronJob":
			var cj batchv1.CronJob
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cj); err != nil {
				t.Fatal(err)
			}
			c := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
			trainCronJob = &c
		}
	}
	if len(pods) != 8 || trainCronJob == nil {
		t.Fatalf("%d pods (5 Deployments, 3 migration Jobs expected), training CronJob %v", len(pods), trainCronJob != nil)
	}
	// `stockcast train` has no -config.print: its own variables must be
	// flags its usage lists (it reads STOCKCAST_<FLAG> the same way).
	if trainCronJob.Args[0] != "train" {
		t.Fatalf("training CronJob args %v", trainCronJob.Args)
	}
	usage, _ := exec.Command(filepath.Join(bin, "stockcast"), "train", "-h").CombinedOutput()
	trainFlags := map[string]bool{}
	for _, l := range strings.Split(string(usage), "\n") {
		if f, ok := strings.CutPrefix(l, "  -"); ok {
			name, _, _ := strings.Cut(f, " ")
			trainFlags["STOCKCAST_"+strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(name))] = true
		}
	}
	if !trainFlags["STOCKCAST_CLICKHOUSE_ADDR"] {
		t.Fatalf("no -clickhouse.addr in `stockcast train -h`:\n%s", usage)
	}
	for _, e := range trainCronJob.Env {
		if !trainFlags[e.Name] {
			t.Errorf("training CronJob sets %s, which is not a flag of `stockcast train`", e.Name)
		}
	}

	cmKeyUsed := map[string]bool{}
	for _, p := range pods {
		env := map[string]string{}
		own := map[string]bool{} // set by the pod template itself
		for _, ef := range p.c.EnvFrom {
			for k, v := range configMaps[ef.ConfigMapRef.Name] {
				env[k] = v
			}
		}
		for _, e := range p.c.Env {
			if e.Name == "GOMEMLIMIT" { // the Go runtime's, not a flag
				checkMemLimit(t, p.what, e.Value, p.c)
				continue
			}
			own[e.Name] = true
			switch {
			case e.ValueFrom == nil:
				env[e.Name] = e.Value
			case e.ValueFrom.SecretKeyRef != nil:
				r := e.ValueFrom.SecretKeyRef
				v, ok := secrets[r.Name][r.Key]
				if !ok {
					t.Errorf("%s: %s from %s/%s, which the chart does not render", p.what, e.Name, r.Name, r.Key)
				}
				env[e.Name] = v
			}
		}
		// The printed configuration, by environment name.
		cmd := exec.Command(filepath.Join(bin, p.binary), append(append([]string(nil), p.args...), "-config.print")...)
		cmd.Env = nil
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s: %s -config.print: %v\n%s", p.what, p.binary, err, out)
			continue
		}
		printed := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			name, val, _ := strings.Cut(sc.Text(), "=")
			printed["STOCKCAST_"+strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(name))] = val
		}
		var missing []string
		for k, v := range env {
			got, ok := printed[k]
			if !ok {
				if own[k] && !(p.binary == "console" && k == "STOCKCAST_REDIS_PASSWORD") { // the shared password env; the console has no Redis
					missing = append(missing, k)
				}
				continue
			}
			if !own[k] {
				cmKeyUsed[k] = true
			}
			want := v
			if v != "" && (strings.Contains(k, "PASSWORD") || strings.Contains(k, "TOKEN") || strings.Contains(k, "SECRET")) {
				want = "***"
			}
			if got != want {
				t.Errorf("%s: %s=%q arrives as %q", p.what, k, v, got)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s sets %v, which are not flags of %s", p.what, missing, p.binary)
		}
	}
	for _, data := range configMaps {
		for k := range data {
			if !cmKeyUsed[k] {
				t.Errorf("ConfigMap key %s is a flag of no service", k)
			}
		}
	}
}
