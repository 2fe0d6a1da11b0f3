package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const dataFile = "../../data/online-retail/online_retail.csv.gz"

func TestRecordsFromData(t *testing.T) {
	recs, err := RecordsFromData(dataFile, 100, "bench.raw.t")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 100 {
		t.Fatalf("got %d records", len(recs))
	}
	var first ordersv1.OrderLineEvent
	if err := proto.Unmarshal(recs[0].Value, &first); err != nil {
		t.Fatal(err)
	}
	if recs[0].Topic != "bench.raw.t" || string(recs[0].Key) != "85123A|online" || first.GetEventId() != "or-2" || first.GetQuantity() != 6 {
		t.Errorf("first record %s %q %v", recs[0].Topic, recs[0].Key, &first)
	}
}

func TestRawBroker(t *testing.T) {
	kc := kafkax.Config{Brokers: testenv.Kafka(t), Partitions: 3}
	const n = 5000
	recs, err := RecordsFromData(dataFile, n, "bench.raw.test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := RawBroker(ctx, kc, recs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != n || res.Elapsed <= 0 || res.PerSec <= 0 || res.AvgBytes < 50 || res.AvgBytes > 300 {
		t.Errorf("result %+v", res)
	}
	// The benchmark topic is deleted afterwards.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	listed, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if listed.Has("bench.raw.test") {
		t.Error("benchmark topic still exists")
	}
}
