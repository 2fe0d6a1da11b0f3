package localstack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// Packages of the servers localstack starts, by binary.
var serverPackages = map[string]string{
	RedisBinary:      "redis-server",
	ClickHouseBinary: "clickhouse-server",
}

// ServerPackages returns the Debian package of every server binary
// localstack can start, for EnsurePackages.
func ServerPackages() map[string]string {
	m := make(map[string]string, len(serverPackages))
	for k, v := range serverPackages {
		m[k] = v
	}
	return m
}

// EnsurePackages makes sure every binary in pkgs (binary -> Debian package)
// is installed. Missing ones are installed with apt-get when running as
// root; otherwise the error says what to install.
func EnsurePackages(ctx context.Context, log *slog.Logger, pkgs map[string]string) error {
	missing := MissingPackages(pkgs)
	if len(missing) == 0 {
		return nil
	}
	install := "apt-get install -y " + strings.Join(missing, " ")
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing packages %v: install them with `sudo apt-get update && sudo %s`", missing, install)
	}
	log.Info("installing missing packages", "packages", missing)
	if err := runCmd(ctx, "apt-get", "update"); err != nil {
		return fmt.Errorf("install %v: %w", missing, err)
	}
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	if err := runCmd(ctx, "apt-get", args...); err != nil {
		return fmt.Errorf("install %v: %w", missing, err)
	}
	if still := MissingPackages(pkgs); len(still) > 0 {
		return fmt.Errorf("installed %v but binaries of %v are still not found", missing, still)
	}
	return nil
}

// MissingPackages returns the sorted, distinct packages of binaries that are
// not found (see FindBinary).
func MissingPackages(pkgs map[string]string) []string {
	set := map[string]bool{}
	for bin, pkg := range pkgs {
		if _, err := FindBinary(bin); err != nil {
			set[pkg] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
