// Package config overlays STOCKCAST_* environment variables on a flag set and
// prints the effective configuration.
//
// Every package that needs configuration owns a struct with
// RegisterFlags(fs, prefix) and Validate(); defaults live in the flag
// definitions. The app package parses the flags, then calls ApplyEnv so that
// the environment fills in only the flags not given on the command line.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// EnvPrefix starts the name of every environment variable stockcast reads.
const EnvPrefix = "STOCKCAST_"

// EnvName is the environment variable for a flag name:
// "kafka.brokers" -> "STOCKCAST_KAFKA_BROKERS".
func EnvName(flagName string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return EnvPrefix + strings.ToUpper(r.Replace(flagName))
}

// Parse parses args into fs and then applies the environment with ApplyEnv.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return ApplyEnv(fs, getenv)
}

// ApplyEnv sets every flag of fs that was not set on the command line from
// its STOCKCAST_* environment variable, when that variable is non-empty.
// Call it after fs.Parse.
func ApplyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := EnvName(f.Name)
		v := getenv(env)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("apply %s to flag -%s: %w", env, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// secretWords mark flags whose values Print masks.
var secretWords = []string{"password", "secret", "token", "credential"}

// IsSecret reports whether the flag name looks like it holds a secret.
func IsSecret(flagName string) bool {
	n := strings.ToLower(flagName)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// Print writes the effective configuration, one "name=value" line per flag
// sorted by name; secret values are replaced by "***" (an empty secret stays
// empty so that "not set" remains visible).
func Print(w io.Writer, fs *flag.FlagSet) {
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		if IsSecret(f.Name) && v != "" {
			v = "***"
		}
		lines = append(lines, fmt.Sprintf("%s=%s", f.Name, v))
	})
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// StringList is a flag.Value holding a comma-separated list, e.g. brokers.
type StringList []string

// String implements flag.Value.
func (l *StringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

// Set implements flag.Value: it replaces the list (no appending, so that an
// env overlay or a repeated flag does not merge with the default).
func (l *StringList) Set(s string) error {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	*l = out
	return nil
}

// StringsVar defines a comma-separated list flag stored in *p.
func StringsVar(fs *flag.FlagSet, p *[]string, name string, value []string, usage string) {
	*p = append([]string(nil), value...)
	fs.Var((*StringList)(p), name, usage)
}
