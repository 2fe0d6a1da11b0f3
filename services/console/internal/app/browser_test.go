package app

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
)

// TestBrowser drives the console in Debian's chromium with playwright-core
// (web/e2e/console.mjs): first load, login, live overview, a series' charts
// (scored by the registry's champion: its version and attributions), the
// proposals list and its CSV, a viewer refused, the models page with the
// champion and the challenger trained before the replay, and a planner's
// policy change and approval, checked here through the replenishment API. Screenshots go to
// web/e2e/artifacts (or $CONSOLE_ARTIFACTS). `make browser-deps` installs
// chromium and the npm packages.
func TestBrowser(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium missing (%v): run `make browser-deps`", err)
	}
	web, err := filepath.Abs("../../web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(web, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core missing (%v): run `make browser-deps`", err)
	}
	artifacts := os.Getenv("CONSOLE_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(web, "e2e", "artifacts")
	}
	e := env(t)
	sku, loc := topSeries(t, e)
	const moq = "36"
	// The planner approves the last proposed proposal with moq 12 and pack
	// size 6 (the stack's built-in policy) at 24 units.
	rc := replClient(t, e)
	resp, err := rc.ListProposals(context.Background(), &replenishmentv1.ListProposalsRequest{
		Status: replenishmentv1.ProposalStatus_PROPOSAL_STATUS_PROPOSED, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var prop *replenishmentv1.Proposal
	for _, p := range resp.GetProposals() {
		if p.GetPolicy().GetMoq() == 12 && p.GetPolicy().GetPackSize() == 6 && p.GetPolicy().GetMaxOrder() == 0 && p.GetSeriesKey() != sku+"|"+loc {
			prop = p
		}
	}
	if prop == nil {
		t.Fatal("no proposed proposal with moq 12 and pack size 6")
	}

	cmd := exec.Command("node", filepath.Join(web, "e2e", "console.mjs"))
	cmd.Dir = web
	cmd.Env = append(os.Environ(), "CONSOLE_URL="+e.url, "SKU="+sku, "LOCATION="+loc, "POLICY_MOQ="+moq,
		"ARTIFACTS="+artifacts, "CHROMIUM="+chromium,
		"PROPOSAL_ID="+prop.GetProposalId(), "PROPOSAL_SKU="+prop.GetSku(), "PROPOSAL_LOCATION="+prop.GetLocation(),
		"CHAMPION="+e.champion, "CHALLENGER="+e.challenger)
	out, err := cmd.CombinedOutput()
	t.Logf("browser test output:\n%s", out)
	if err != nil {
		t.Fatalf("browser test: %v (screenshots in %s)", err, artifacts)
	}

	conn, err := grpcx.Dial(e.st.GRPC(stack.Replenishment), telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := replenishmentv1.NewReplenishmentServiceClient(conn).GetPolicy(context.Background(),
		&replenishmentv1.GetPolicyRequest{Sku: sku, Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSource() != "series" || got.GetPolicy().GetMoq() != 36 {
		t.Errorf("policy after the planner's change in the browser: %s %v, want moq %s", got.GetSource(), got.GetPolicy(), moq)
	}
	// The approval, through the replenishment API.
	if got := getProposal(t, rc, prop); got.GetStatus() != replenishmentv1.ProposalStatus_PROPOSAL_STATUS_APPROVED ||
		got.GetApprovedQuantity() != 24 || got.GetDecidedBy() != "paul" {
		t.Errorf("proposal after the planner's approval in the browser: %v %v %q, want approved 24 by paul",
			got.GetStatus(), got.GetApprovedQuantity(), got.GetDecidedBy())
	}
	for _, name := range []string{"overview", "series", "proposals", "data-quality", "policy-saved", "alerts", "reports", "models",
		"approve-refused", "proposal-approved"} {
		if fi, err := os.Stat(filepath.Join(artifacts, name+".png")); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
}
