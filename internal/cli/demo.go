package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"

	"github.com/stockcast/stockcast/internal/demoloop"
	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/retail"
)

// stackFlags are the flags of the commands that start a stack.
type stackFlags struct {
	dir, binDir string
	brokers     []string
	partitions  int
	fresh       bool
	// consoleUsers, when set, start the web console too.
	consoleUsers []string
	// serviceFlags are extra flags per service (the demo's model polling).
	serviceFlags map[string][]string
}

func (f *stackFlags) register(fs *flag.FlagSet, defaultDir string) {
	fs.StringVar(&f.dir, "dir", defaultDir, "directory of the local stack: stores' data, broker data and service logs")
	fs.StringVar(&f.binDir, "bin-dir", "bin", "directory with the service binaries (make build puts them in bin)")
	config.StringsVar(fs, &f.brokers, "kafka.brokers", nil, "use this Kafka cluster instead of the embedded broker")
	fs.IntVar(&f.partitions, "partitions", 6, "partitions of the topics the stack creates")
	fs.BoolVar(&f.fresh, "fresh", true, "start from empty stores and topics (deletes the stack directory first)")
}

// start starts the stack; ingest gets the replay's list of non-product codes
// so that both agree on which lines are not demand.
func (f *stackFlags) start(ctx context.Context, log *slog.Logger, stdout io.Writer, nonProduct []string) (*stack.Stack, error) {
	if f.fresh {
		if err := stack.Reset(f.dir); err != nil {
			return nil, err
		}
	}
	return stack.Start(ctx, stack.Config{
		Dir: f.dir, BinDir: f.binDir, KafkaBrokers: f.brokers, Partitions: f.partitions,
		Logger: log, Stdout: stdout, ConsoleUsers: f.consoleUsers,
		ServiceFlags: f.withServiceFlags(map[string][]string{stack.Ingest: {"-ingest.non-product-skus=" + strings.Join(nonProduct, ",")}}),
	})
}

// withServiceFlags adds f.serviceFlags to flags.
func (f *stackFlags) withServiceFlags(flags map[string][]string) map[string][]string {
	for name, fl := range f.serviceFlags {
		flags[name] = append(flags[name], fl...)
	}
	return flags
}

// stopStack stops the stack; it logs rather than prints, so that the
// summary stays the last line of stdout.
func stopStack(st *stack.Stack, log *slog.Logger) error {
	start := time.Now()
	if err := st.Stop(); err != nil {
		return fmt.Errorf("stop stack: %w", err)
	}
	log.Info("stack stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func runDemo(ctx context.Context, e *env, args []string) (err error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var (
		sf          stackFlags
		rc          replay.Config
		logs        logFlags
		keepRunning bool
		retrain     bool
		noSupplier  bool
		lc          demoloop.Config
		training    = demoTraining{poll: 2 * time.Second, timeout: 2 * time.Minute}
	)
	sf.register(fs, ".data/demo")
	rc.RegisterFlags(fs, "")
	logs.register(fs)
	fs.BoolVar(&keepRunning, "keep-running", false, "leave the stack up after the replay until Ctrl-C")
	fs.StringVar(&training.at, "train-at", "2011-10-01", "when the replayed history reaches this day, train the global model on the days before it "+
		"(stockcast train -data clickhouse) and promote it; the forecast service loads it (off: no training)")
	fs.BoolVar(&retrain, "retrain", true, "after the replay, train again on the whole history and compare with the champion on the same days: "+
		"promoted if better, else recorded as a challenger")
	config.StringsVar(fs, &training.extra, "train-flags", nil, "more flags for the training, e.g. -rounds=50")
	fs.BoolVar(&noSupplier, "no-supplier", false, "no planner and no supplier: nobody approves a proposal or delivers (the unattended shop of the earlier demos)")
	lc.RegisterFlags(fs, "")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(rc.Validate(), lc.Validate()); err != nil {
		return fmt.Errorf("validate flags: %w", err)
	}
	log, err := logs.logger(e.stderr)
	if err != nil {
		return err
	}

	train := training.at != "" && training.at != "off"
	if train {
		if _, err := forecasting.ParseDay(training.at); err != nil {
			return fmt.Errorf("-train-at: %w", err)
		}
		// the champion is polled often, so that it is used soon after its promotion
		sf.serviceFlags = map[string][]string{stack.Forecast: {"-model.poll-interval=2s"}}
	}
	password, err := sf.withDemoConsole()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "starting the local stack in %s\n", sf.dir)
	st, err := sf.start(ctx, log, e.stdout, rc.NonProductSKUs)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopStack(st, log)) }()
	printConsole(e.stdout, st, password)

	fmt.Fprintf(e.stdout, "\nreplaying %s (speed %s, limit %s)\n", rc.Data, speedText(rc.Speed), limitText(rc.Limit))
	replayed := make(chan struct{})
	var trainDone chan error
	if train {
		fmt.Fprintf(e.stdout, "the global model is trained when the history reaches %s\n", training.at)
		trainDone = make(chan error, 1)
		go func() {
			logPath := filepath.Join(sf.dir, "logs", "train.log")
			res, err := training.run(ctx, st, replayed, filepath.Join(sf.dir, "models"), logPath)
			if err == nil {
				fmt.Fprintln(e.stdout)
				res.print(e.stdout, logPath)
			}
			trainDone <- err
		}()
	}
	rp := replay.New(rc, st.Kafka(), log, progressFor(e.stderr))
	var loop *demoloop.Loop
	if !noSupplier {
		if loop, err = demoloop.New(ctx, lc, st.Kafka(), st.GRPC(stack.Replenishment), log); err != nil {
			return err
		}
		defer loop.Close()
		rp.WithActor(loop)
		fmt.Fprintf(e.stdout, "a planner reviews the proposals every %v of event time and approves them (scale %g); a supplier (%s) delivers after %s\n",
			lc.Review, lc.Scale, lc.Supplier, leadTimeText(lc.LeadTime))
	}
	sum, err := rp.Run(ctx)
	close(replayed)
	trainedFirst := false
	if trainDone != nil {
		switch terr := <-trainDone; {
		case terr == nil:
			trainedFirst = true
		case errors.Is(terr, errHistoryShort):
			fmt.Fprintf(e.stdout, "\nmodel: not trained: the replay ended before %s\n", training.at)
		case terr != nil && ctx.Err() == nil:
			fmt.Fprintf(e.stdout, "\nmodel: %v\n", terr)
		}
	}
	fmt.Fprintln(e.stdout)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(e.stdout, "interrupted; summary so far:")
			if loop != nil {
				printLoop(ctx, e.stdout, loop, nil)
			}
			sum.Print(e.stdout)
			return nil
		}
		sum.Print(e.stdout)
		return fmt.Errorf("replay: %w", err)
	}
	// retrained only after a first model: a replay too short to reach
	// -train-at is too short to train on
	if trainedFirst && retrain && ctx.Err() == nil {
		logPath := filepath.Join(sf.dir, "logs", "retrain.log")
		res, err := training.train(ctx, st, "", filepath.Join(sf.dir, "models"), logPath)
		if err != nil {
			fmt.Fprintf(e.stdout, "model: retraining: %v\n", err)
		} else {
			res.print(e.stdout, logPath)
		}
		fmt.Fprintln(e.stdout)
	}
	showcase(ctx, st, e.stdout)
	if loop != nil {
		printLoop(ctx, e.stdout, loop, sum.SeriesKeys)
	}
	sum.Print(e.stdout)
	if keepRunning {
		printConsole(e.stdout, st, password)
		fmt.Fprintln(e.stdout, "\nthe stack keeps running (addresses above); Ctrl-C stops it")
		<-ctx.Done()
	}
	return nil
}

// showcase asks the services' gRPC APIs about the best-selling item, to show
// what a client sees after the replay. Failures are printed, not fatal.
func showcase(ctx context.Context, st *stack.Stack, w io.Writer) {
	const sku = "85123A" // WHITE HANGING HEART T-LIGHT HOLDER, the most ordered item
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fmt.Fprintf(w, "what the APIs say about %s|%s:\n", sku, retail.Location)

	conn, err := grpc.NewClient(st.GRPC(stack.Forecast), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err == nil {
		defer conn.Close()
		var resp *forecastv1.GetForecastResponse
		resp, err = forecastv1.NewForecastServiceClient(conn).GetForecast(ctx, &forecastv1.GetForecastRequest{Sku: sku, Location: retail.Location})
		if err == nil {
			f := resp.GetForecast()
			var days []string
			for i, d := range f.GetDaily() {
				if i == 7 {
					break
				}
				days = append(days, fmt.Sprintf("%.1f", d.GetMean()))
			}
			model := f.GetModel()
			if v := f.GetGlobal().GetVersion(); v != "" {
				model += " " + v
			}
			fmt.Fprintf(w, "  forecast as of %s (%s, %s, class %s): next days %s\n",
				f.GetAsOf().AsTime().Format(time.RFC3339), model, f.GetReason().GetCode(), f.GetDemandClass(), strings.Join(days, " "))
			var ltd []string
			for _, l := range f.GetLeadTimeDemand() {
				ltd = append(ltd, fmt.Sprintf("%dd %.1f (p95 %.1f)", l.GetLeadTimeDays()+l.GetReviewPeriodDays(), l.GetMean(),
					quantileAt(f.GetQuantileLevels(), l.GetQuantiles(), 0.95)))
			}
			fmt.Fprintf(w, "  lead-time demand: %s\n", strings.Join(ltd, ", "))
		}
	}
	if err != nil {
		fmt.Fprintf(w, "  forecast: %v\n", err)
	}

	conn2, err := grpc.NewClient(st.GRPC(stack.Replenishment), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err == nil {
		defer conn2.Close()
		var resp *replenishmentv1.ListProposalsResponse
		resp, err = replenishmentv1.NewReplenishmentServiceClient(conn2).ListProposals(ctx,
			&replenishmentv1.ListProposalsRequest{Sku: sku, Location: retail.Location, PageSize: 3})
		if err == nil {
			fmt.Fprintf(w, "  proposals (first %d):\n", len(resp.GetProposals()))
			for _, p := range resp.GetProposals() {
				fmt.Fprintf(w, "    %s on %s: order %.0f (reorder point %.1f, order-up-to %.1f, position %.1f), %s\n",
					p.GetProposalId(), p.GetDecidedAt().AsTime().Format("2006-01-02"), p.GetQuantity(),
					p.GetReorderPoint(), p.GetOrderUpTo(), p.GetInventoryPosition(), p.GetReason())
			}
		}
	}
	if err != nil {
		fmt.Fprintf(w, "  proposals: %v\n", err)
	}
	fmt.Fprintln(w)
}

// quantileAt returns the quantile at level, NaN when the forecast lacks it.
func quantileAt(levels, values []float64, level float64) float64 {
	for i, l := range levels {
		if math.Abs(l-level) < 1e-9 && i < len(values) {
			return values[i]
		}
	}
	return math.NaN()
}

// printLoop prints what the planner and the supplier did and the positions
// the service reports at the end (with series; without, interrupted: the
// counts only).
func printLoop(ctx context.Context, w io.Writer, loop *demoloop.Loop, series []string) {
	s := loop.Stats()
	fmt.Fprintf(w, "planner and supplier: %d reviews; proposals %d: approved %d, rejected as superseded %d, awaiting the next review %d\n",
		s.Reviews, s.Proposals, s.Approved, s.Superseded, s.AwaitingReview)
	fmt.Fprintf(w, "  purchase orders placed %d (%.0f units), received %d (%.0f units), open at the end %d\n",
		s.Placed, s.UnitsOrdered, s.Received, s.UnitsReceived, s.OpenOrders)
	if len(series) == 0 {
		fmt.Fprintf(w, "loop: approved=%d superseded=%d placed=%d received=%d open_orders=%d\n\n",
			s.Approved, s.Superseded, s.Placed, s.Received, s.OpenOrders)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	sv, err := loop.TakeSurvey(ctx, series)
	if err != nil {
		fmt.Fprintf(w, "  positions: %v\n", err)
	} else if sv.Series > 0 {
		fmt.Fprintf(w, "  positions of %d series: lowest %.0f (%s), %d negative, %d with nothing on hand, %d with units on order, %d deciding with a learned lead time\n",
			sv.Series, sv.Lowest, sv.LowestSeries, sv.Negative, sv.OutOfStock, sv.OnOrder, sv.LearnedLeadTime)
	}
	fmt.Fprintf(w, "loop: approved=%d superseded=%d placed=%d received=%d open_orders=%d lowest_position=%.0f\n\n",
		s.Approved, s.Superseded, s.Placed, s.Received, s.OpenOrders, sv.Lowest)
}

func leadTimeText(d time.Duration) string {
	if d == 0 {
		return "the policy's lead time"
	}
	return d.String()
}

func speedText(s float64) string {
	if s == 0 {
		return "as fast as possible"
	}
	return fmt.Sprintf("%gx", s)
}

func limitText(n int) string {
	if n == 0 {
		return "all lines"
	}
	return fmt.Sprintf("%d lines", n)
}
