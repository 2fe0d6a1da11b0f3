// Package cli implements the stockcast command: demo, replay,
// bench-pipeline and version.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/pkg/config"
)

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, env *env, args []string) error
}

// env is what every subcommand gets from main.
type env struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"demo", "start the local stack, replay the Online Retail data through it, print what happened", runDemo},
		{"replay", "replay the Online Retail data into an already running system and measure it", runReplay},
		{"bench-pipeline", "raw broker rate vs. end-to-end pipeline throughput and latency", runBench},
		{"loadgen", "synthetic order lines (Zipf series, steady or burst rate): throughput, latency, CPU and memory per service", runLoadgen},
		{"simulate", "replay real daily demand through replenishment policies and compare them", runSimulate},
		{"topics", "topics create: create every stockcast topic and its dead-letter topic", runTopics},
		{"dlq", "dlq redrive --topic X.dlq: produce dead-lettered records back to their topic", runDLQ},
		{"offsets", "offsets reset --group G --topic T --to-time T: move a stopped group's offsets", runOffsets},
		{"backtest", "rolling-origin evaluation of the forecasting models (and peers' forecasts) with the M5 metrics", runBacktest},
		{"train", "train the global forecasting model, backtest it (against a champion) and write a versioned artefact", runTrain},
		{"models", "models list | models promote -version V: the model registry; promoting an earlier version rolls the model back", runModels},
		{"version", "print the version", runVersion},
	}
}

// Run runs the subcommand named by args[0]. stderr gets logs and the
// progress bar; stdout gets results.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, e, args[1:])
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: stockcast <command> [flags]   (stockcast <command> -h lists the flags)")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set with STOCKCAST_<FLAG> (upper case, '.' and '-' as '_').")
}

// parse parses a subcommand's flags, then the environment for unset ones.
func (e *env) parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(e.stderr)
	if err := config.Parse(fs, args, e.getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}

// logFlags are the CLI's own logging flags.
type logFlags struct{ level string }

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log.level", "info", "log level of the stockcast command itself (debug, info, warn, error)")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("parse log level %q: %w", l.level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// progressFor returns a progress bar on w, drawn in place when w is a terminal.
func progressFor(w io.Writer) *replay.Progress {
	f, ok := w.(*os.File)
	return replay.NewProgress(w, ok && replay.IsTerminal(f))
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, versionString())
	return nil
}

// versionString describes the build from the information Go embeds.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "stockcast (no build information)"
	}
	parts := []string{"stockcast", bi.Main.Version}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += "-dirty"
		}
		parts = append(parts, "commit "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, t)
	}
	parts = append(parts, bi.GoVersion)
	return strings.Join(parts, " ")
}
