package k8s

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// rendered is one render of the chart, typed where the tests look inside.
type rendered struct {
	deployments map[string]*appsv1.Deployment // by service name
	secrets     map[string]*corev1.Secret
	policies    map[string]*networkingv1.NetworkPolicy
	configMaps  map[string]*corev1.ConfigMap
}

func renderTyped(t *testing.T, set []string) rendered {
	t.Helper()
	r := rendered{map[string]*appsv1.Deployment{}, map[string]*corev1.Secret{}, map[string]*networkingv1.NetworkPolicy{}, map[string]*corev1.ConfigMap{}}
	for _, o := range strictDecode(t, splitDocs(t, render(t, set))) {
		var into any
		switch o.GetKind() {
		case "Deployment":
			d := &appsv1.Deployment{}
			r.deployments[strings.TrimPrefix(o.GetName(), release+"-")] = d
			into = d
		case "Secret":
			s := &corev1.Secret{}
			r.secrets[o.GetName()] = s
			into = s
		case "NetworkPolicy":
			np := &networkingv1.NetworkPolicy{}
			r.policies[o.GetName()] = np
			into = np
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			r.configMaps[o.GetName()] = cm
			into = cm
		default:
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func container(d *appsv1.Deployment) *corev1.Container { return &d.Spec.Template.Spec.Containers[0] }

func envVar(c *corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func volume(d *appsv1.Deployment, name string) (corev1.Volume, bool) {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

func mountPath(d *appsv1.Deployment, name string) string {
	for _, m := range container(d).VolumeMounts {
		if m.Name == name {
			return m.MountPath
		}
	}
	return ""
}

// secretRef returns "secret/key" of an env var taken from a Secret, "" otherwise.
func secretRef(e corev1.EnvVar) string {
	if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		return ""
	}
	r := e.ValueFrom.SecretKeyRef
	s := r.Name + "/" + r.Key
	if r.Optional != nil && *r.Optional {
		s += " (optional)"
	}
	return s
}

var authValues = []string{
	"grpcAuth.enabled=true",
	"grpcAuth.tokens={platform writer 0123456789abcdef0123,forecast forecast sha256:" + strings.Repeat("ab", 32) + "}",
	"grpcAuth.featureToken=fc-0123456789abcdef",
	"grpcAuth.consoleToken=co-0123456789abcdef",
	"grpcAuth.methodRoles.feature=*=forecast|admin",
	"grpcAuth.methodRoles.ingest=/stockcast.ingest.v1.IngestService/*=writer|admin\\,*=admin",
}

// TestGRPCAuthOffByDefault: without grpcAuth no pod gets a token variable
// and no token Secret is rendered.
func TestGRPCAuthOffByDefault(t *testing.T) {
	r := renderTyped(t, nil)
	for name, d := range r.deployments {
		for _, e := range container(d).Env {
			if strings.Contains(e.Name, "TOKEN") || strings.Contains(e.Name, "GRPC_AUTH") {
				t.Errorf("%s: %s set with grpcAuth off", name, e.Name)
			}
		}
	}
	if _, ok := r.secrets[release+"-stockcast-grpc-auth"]; ok {
		t.Error("grpc auth Secret rendered with grpcAuth off")
	}
}

// TestGRPCAuthEnv: every gRPC server reads the token lines from the Secret,
// its own method roles as a value; forecast and the console get their
// client tokens; the Secret holds exactly the values given; no token is in
// the ConfigMap.
func TestGRPCAuthEnv(t *testing.T) {
	r := renderTyped(t, authValues)
	sec := r.secrets[release+"-stockcast-grpc-auth"]
	if sec == nil {
		t.Fatalf("no grpc auth Secret among %v", r.secrets)
	}
	want := map[string]string{
		"tokens":        "platform writer 0123456789abcdef0123;forecast forecast sha256:" + strings.Repeat("ab", 32),
		"feature-token": "fc-0123456789abcdef",
		"console-token": "co-0123456789abcdef",
	}
	if len(sec.StringData) != len(want) {
		t.Errorf("grpc auth Secret keys %v, want %v", sec.StringData, want)
	}
	for k, v := range want {
		if sec.StringData[k] != v {
			t.Errorf("grpc auth Secret %s = %q, want %q", k, sec.StringData[k], v)
		}
	}
	roles := map[string]string{"feature": "*=forecast|admin", "ingest": "/stockcast.ingest.v1.IngestService/*=writer|admin,*=admin"}
	for _, name := range strings.Fields(serviceList) {
		c := container(r.deployments[name])
		e, _ := envVar(c, "STOCKCAST_GRPC_AUTH_TOKENS")
		if got := secretRef(e); got != release+"-stockcast-grpc-auth/tokens" {
			t.Errorf("%s: STOCKCAST_GRPC_AUTH_TOKENS from %q", name, got)
		}
		e, ok := envVar(c, "STOCKCAST_GRPC_AUTH_METHOD_ROLES")
		if e.Value != roles[name] || ok != (roles[name] != "") {
			t.Errorf("%s: method roles %q (set %v), want %q", name, e.Value, ok, roles[name])
		}
		e, ok = envVar(c, "STOCKCAST_FEATURE_TOKEN")
		if name == "forecast" {
			if got := secretRef(e); got != release+"-stockcast-grpc-auth/feature-token" {
				t.Errorf("forecast: STOCKCAST_FEATURE_TOKEN from %q", got)
			}
		} else if ok {
			t.Errorf("%s has STOCKCAST_FEATURE_TOKEN", name)
		}
	}
	con := container(r.deployments["console"])
	e, _ := envVar(con, "STOCKCAST_UPSTREAM_TOKEN")
	if got := secretRef(e); got != release+"-stockcast-grpc-auth/console-token" {
		t.Errorf("console: STOCKCAST_UPSTREAM_TOKEN from %q", got)
	}
	if _, ok := envVar(con, "STOCKCAST_GRPC_AUTH_TOKENS"); ok {
		t.Error("console (no gRPC server) gets the server tokens")
	}
	for _, cm := range r.configMaps {
		for k, v := range cm.Data {
			if strings.Contains(v, "0123456789abcdef") {
				t.Errorf("ConfigMap %s: %s holds a token", cm.Name, k)
			}
		}
	}

	// An existing Secret: referenced, none rendered.
	r = renderTyped(t, []string{"grpcAuth.enabled=true", "grpcAuth.existingSecret=grpc-tokens"})
	if _, ok := r.secrets[release+"-stockcast-grpc-auth"]; ok {
		t.Error("grpc auth Secret rendered although existingSecret is set")
	}
	e, _ = envVar(container(r.deployments["forecast"]), "STOCKCAST_FEATURE_TOKEN")
	if got := secretRef(e); got != "grpc-tokens/feature-token" {
		t.Errorf("forecast token from %q with existingSecret", got)
	}
}

// TestConsoleOptions: the reports volume, OIDC, HTTPS and the egress policy.
func TestConsoleOptions(t *testing.T) {
	// Defaults: no schedule, the reports directory on an emptyDir; no
	// OIDC, no HTTPS, ingress-only policy.
	r := renderTyped(t, nil)
	d := r.deployments["console"]
	c := container(d)
	if e, _ := envVar(c, "STOCKCAST_REPORTS_DIR"); e.Value != "/var/lib/stockcast/reports" {
		t.Errorf("reports dir %q", e.Value)
	}
	if v, ok := volume(d, "reports"); !ok || v.EmptyDir == nil || mountPath(d, "reports") != "/var/lib/stockcast/reports" {
		t.Errorf("reports volume %+v mounted at %q, want an emptyDir", v, mountPath(d, "reports"))
	}
	for _, n := range []string{"STOCKCAST_REPORTS_SCHEDULE", "STOCKCAST_OIDC_ISSUER", "STOCKCAST_HTTP_TLS_CERT"} {
		if _, ok := envVar(c, n); ok {
			t.Errorf("%s set by default", n)
		}
	}
	if np := r.policies[release+"-console"]; len(np.Spec.PolicyTypes) != 1 || np.Spec.Egress != nil {
		t.Errorf("default console policy types %v egress %v", np.Spec.PolicyTypes, np.Spec.Egress)
	}

	r = renderTyped(t, []string{
		"console.reports.schedule=06:30", "console.reports.existingClaim=console-reports",
		"console.oidc.issuer=https://idp.example.com", "console.oidc.clientID=stockcast-console",
		"console.oidc.redirectURL=https://console.example.com/api/oidc/callback",
		"console.oidc.roles={alice@example.com=admin,bob@example.com=viewer}", "console.oidc.clientSecret=oidc-s3cret",
		"console.httpTLS.secretName=console-https",
		"console.egress.enabled=true", "kafka.brokers=k0:9092\\,k1:9093\\,k2:9092", "clickhouse.addr=ch:9440",
		"console.egress.kafkaTo[0].ipBlock.cidr=10.1.0.0/16",
	})
	d = r.deployments["console"]
	c = container(d)
	wantEnv := map[string]string{
		"STOCKCAST_REPORTS_SCHEDULE":        "06:30",
		"STOCKCAST_REPORTS_DIR":             "/var/lib/stockcast/reports",
		"STOCKCAST_OIDC_ISSUER":             "https://idp.example.com",
		"STOCKCAST_OIDC_CLIENT_ID":          "stockcast-console",
		"STOCKCAST_OIDC_REDIRECT_URL":       "https://console.example.com/api/oidc/callback",
		"STOCKCAST_OIDC_CLIENT_SECRET_FILE": "/etc/stockcast/oidc/client-secret",
		"STOCKCAST_OIDC_ROLES":              "alice@example.com=admin,bob@example.com=viewer",
		"STOCKCAST_HTTP_TLS_CERT":           "/etc/stockcast/console-tls/tls.crt",
		"STOCKCAST_HTTP_TLS_KEY":            "/etc/stockcast/console-tls/tls.key",
	}
	for n, v := range wantEnv {
		if e, _ := envVar(c, n); e.Value != v {
			t.Errorf("%s = %q, want %q", n, e.Value, v)
		}
	}
	// The client secret is a file from a Secret, never a value.
	for _, e := range c.Env {
		if strings.Contains(e.Value, "oidc-s3cret") {
			t.Errorf("%s carries the OIDC client secret", e.Name)
		}
	}
	if v, ok := volume(d, "reports"); !ok || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "console-reports" {
		t.Errorf("reports volume %+v, want the claim console-reports", v)
	}
	v, _ := volume(d, "oidc")
	if v.Secret == nil || v.Secret.SecretName != release+"-console-oidc" || len(v.Secret.Items) != 1 ||
		v.Secret.Items[0].Key != "client-secret" || v.Secret.Items[0].Path != "client-secret" || mountPath(d, "oidc") != "/etc/stockcast/oidc" {
		t.Errorf("oidc volume %+v at %q", v, mountPath(d, "oidc"))
	}
	if s := r.secrets[release+"-console-oidc"]; s == nil || s.StringData["client-secret"] != "oidc-s3cret" {
		t.Errorf("oidc Secret %+v", s)
	}
	v, _ = volume(d, "http-tls")
	if v.Secret == nil || v.Secret.SecretName != "console-https" || mountPath(d, "http-tls") != "/etc/stockcast/console-tls" {
		t.Errorf("https volume %+v at %q", v, mountPath(d, "http-tls"))
	}

	np := r.policies[release+"-console"]
	if got := len(np.Spec.PolicyTypes); got != 2 || np.Spec.PolicyTypes[1] != networkingv1.PolicyTypeEgress {
		t.Fatalf("console policy types %v", np.Spec.PolicyTypes)
	}
	// Rules as "ports -> peers", in order.
	var got []string
	for _, rule := range np.Spec.Egress {
		var ports, peers []string
		for _, p := range rule.Ports {
			ports = append(ports, string(*p.Protocol)+"/"+p.Port.String())
		}
		for _, p := range rule.To {
			switch {
			case p.IPBlock != nil:
				peers = append(peers, "ip:"+p.IPBlock.CIDR)
			case p.PodSelector != nil:
				peers = append(peers, "pods:"+p.PodSelector.MatchLabels["app.kubernetes.io/instance"])
			}
		}
		got = append(got, strings.Join(ports, ",")+" -> "+strings.Join(peers, ","))
	}
	want := []string{
		"UDP/53,TCP/53 -> ",
		"TCP/9090,TCP/9464 -> pods:" + release,
		"TCP/9092,TCP/9093 -> ip:10.1.0.0/16",
		"TCP/9440 -> ",
		"TCP/443 -> ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("console egress:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSecretChecksumRestartsPods: each pod template carries a checksum of
// the chart's Secrets it reads, so a changed password restarts every pod, a
// changed console user only the console, a changed token the pods that read
// the token Secret.
func TestSecretChecksumRestartsPods(t *testing.T) {
	sums := func(set []string) map[string]string {
		m := map[string]string{}
		for name, d := range renderTyped(t, set).deployments {
			s := d.Spec.Template.Annotations["checksum/secret"]
			if len(s) != 64 {
				t.Fatalf("%s: checksum/secret %q", name, s)
			}
			m[name] = s
		}
		return m
	}
	all := strings.Fields(serviceList + " console")
	with := func(extra ...string) []string { return append(append([]string(nil), authValues...), extra...) }
	base := sums(with("console.users={alice:admin:$2a$10$x}"))
	for _, tc := range []struct {
		set     []string
		changed []string
	}{
		{[]string{"console.users={alice:admin:$2a$10$x}"}, all}, // grpcAuth off: its Secret gone
		{with("console.users={alice:admin:$2a$10$x}", "secrets.redisPassword=changed"), all},
		{with("console.users={alice:admin:$2a$10$y}"), []string{"console"}},
		{with("console.users={alice:admin:$2a$10$x}", "grpcAuth.consoleToken=co-changed-0123456789"), all},
		{with("console.users={alice:admin:$2a$10$x}", "log.level=debug"), nil}, // the ConfigMap's checksum covers it
	} {
		got := sums(tc.set)
		for _, name := range all {
			want := false
			for _, c := range tc.changed {
				want = want || c == name
			}
			if (got[name] != base[name]) != want {
				t.Errorf("set %v: %s checksum changed %v, want %v", tc.set[len(tc.set)-1], name, got[name] != base[name], want)
			}
		}
	}
}

// TestKafkaSettingsInConfigMap: the services (which create missing topics
// when topics.mode is none) get the partition count and the replication
// factor of the values.
func TestKafkaSettingsInConfigMap(t *testing.T) {
	r := renderTyped(t, []string{"kafka.partitions=12", "kafka.replicationFactor=3", "kafka.brokers=k0:9092\\,k1:9092"})
	cm := r.configMaps[release+"-stockcast-env"]
	if cm == nil {
		t.Fatalf("no env ConfigMap among %v", r.configMaps)
	}
	for k, v := range map[string]string{"STOCKCAST_KAFKA_BROKERS": "k0:9092,k1:9092", "STOCKCAST_KAFKA_PARTITIONS": "12", "STOCKCAST_KAFKA_REPLICATION_FACTOR": "3"} {
		if cm.Data[k] != v {
			t.Errorf("%s = %q, want %q", k, cm.Data[k], v)
		}
	}
	// The console reads the brokers from the same ConfigMap.
	if ef := r.deployments["console"].Spec.Template.Spec.Containers[0].EnvFrom; len(ef) != 1 || ef[0].ConfigMapRef == nil || ef[0].ConfigMapRef.Name != cm.Name {
		t.Errorf("console envFrom %+v", ef)
	}
}
