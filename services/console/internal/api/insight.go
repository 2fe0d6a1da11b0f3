package api

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/services/console/internal/insight"
	"github.com/stockcast/stockcast/services/console/internal/reports"
)

// maxAlerts bounds the alerts one page lists (the counts cover all).
const maxAlerts = 500

func (h *Handler) alerts(w http.ResponseWriter, r *http.Request) {
	v := insight.AlertsView{Alerts: []insight.Alert{}}
	if h.d.Alerts != nil {
		v = h.d.Alerts.View()
	}
	q := r.URL.Query()
	size, page := 50, 1
	if s := q.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > maxAlerts {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("page_size must be 0..%d", maxAlerts))
			return
		}
		size = n
	}
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			jsonError(w, http.StatusBadRequest, "page must be >= 1")
			return
		}
		page = n
	}
	match := []insight.Alert{}
	for _, a := range v.Alerts {
		if rule := q.Get("rule"); rule == "" || a.Rule == rule {
			match = append(match, a)
		}
	}
	from := min((page-1)*size, len(match))
	to := min(from+size, len(match))
	writeJSON(w, map[string]any{"alerts": match[from:to], "matching": len(match), "total": len(v.Alerts), "critical": v.Critical,
		"evaluations": v.Evaluations, "published": v.Published, "evaluated_at": v.EvaluatedAt, "error": v.Error})
}

// ModelRow is one registry entry; NaN metrics (no champion to compare
// with) are null.
type ModelRow struct {
	Version         string   `json:"version"`
	CreatedAt       string   `json:"created_at"`
	UpdatedAt       string   `json:"updated_at"`
	Status          string   `json:"status"`
	DataSet         string   `json:"data_set"`
	Artefact        string   `json:"artefact"`
	WRMSSE          *float64 `json:"wrmsse"`
	WSPL            *float64 `json:"wspl"`
	MASE            *float64 `json:"mase"`
	Bias            *float64 `json:"bias"`
	Coverage50      *float64 `json:"coverage50"`
	Coverage90      *float64 `json:"coverage90"`
	Coverage98      *float64 `json:"coverage98"`
	ChampionVersion string   `json:"champion_version"`
	ChampionWRMSSE  *float64 `json:"champion_wrmsse"`
	TrainSeconds    *float64 `json:"train_seconds"`
}

func fp(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// ModelsDays is the window of the live accuracy on the models page.
const ModelsDays = 28

func (h *Handler) models(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*h.d.CallTimeout)
	defer cancel()
	out := map[string]any{"models": []ModelRow{}, "champion": nil, "accuracy": []insight.DayAccuracy{}}
	var errs []string
	if h.d.Models != nil {
		ms, err := h.d.Models.List(ctx)
		if err != nil {
			// No registry yet (no model trained): the page says so.
			if strings.Contains(err.Error(), "UNKNOWN_TABLE") || strings.Contains(err.Error(), "doesn't exist") {
				out["registry_missing"] = true
			} else {
				errs = append(errs, err.Error())
			}
		}
		rows := []ModelRow{}
		for _, m := range ms {
			row := ModelRow{Version: m.Version, CreatedAt: m.CreatedAt.UTC().Format(time.DateTime), UpdatedAt: m.UpdatedAt.UTC().Format(time.DateTime),
				Status: m.Status, DataSet: m.DataSet, Artefact: m.Artefact, WRMSSE: fp(m.WRMSSE), WSPL: fp(m.WSPL), MASE: fp(m.MASE),
				Bias: fp(m.Bias), Coverage50: fp(m.Coverage50), Coverage90: fp(m.Coverage90), Coverage98: fp(m.Coverage98),
				ChampionVersion: m.ChampionVersion, ChampionWRMSSE: fp(m.ChampionWRMSSE), TrainSeconds: fp(m.TrainSeconds)}
			rows = append(rows, row)
			if m.Status == modelregistry.StatusChampion && out["champion"] == nil {
				out["champion"] = row
			}
		}
		out["models"] = rows
	}
	// Live accuracy over time: every series' forecasts against demand, by day.
	if h.d.Insight != nil {
		var today string
		if err := h.d.Store.ch.QueryRow(ctx, `SELECT toString(max(day)) FROM order_lines WHERE is_demand = 1`).Scan(&today); err != nil {
			errs = append(errs, err.Error())
		} else if from, to, ok := insight.ErrorWindow(today, ModelsDays); ok {
			es, err := h.d.Insight.ForecastErrors(ctx, from, to, "")
			if err != nil {
				errs = append(errs, err.Error())
			} else {
				out["accuracy"] = insight.ByDay(es)
			}
		}
	}
	if len(errs) > 0 {
		out["errors"] = errs
	}
	writeJSON(w, out)
}

func (h *Handler) listReports(w http.ResponseWriter, _ *http.Request) {
	files, err := reports.List(h.d.ReportsDir)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, map[string]any{"files": files, "scheduled": h.d.ReportsDir != ""})
}

// dailyReport builds the report now: ?format=html|csv|pdf|json; with
// &generated_at= of the last report built, that report again.
func (h *Handler) dailyReport(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	if _, ok := reports.Formats[format]; !ok && format != "json" {
		jsonError(w, http.StatusBadRequest, "format must be html, csv, pdf or json")
		return
	}
	rep, ok := h.reportAt(r.URL.Query().Get("generated_at"))
	if !ok {
		ctx, cancel := context.WithTimeout(r.Context(), 4*h.d.CallTimeout)
		defer cancel()
		var err error
		if rep, err = reports.Build(ctx, h.d.Insight, h.d.Now()); err != nil {
			h.fail(w, err)
			return
		}
		h.reportMu.Lock()
		h.lastReport = &rep
		h.reportMu.Unlock()
	}
	if format == "json" {
		writeJSON(w, rep)
		return
	}
	var b bytes.Buffer
	if err := rep.Render(&b, format); err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", reports.Formats[format])
	w.Header().Set("Cache-Control", "no-store")
	if format != "html" || r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="report-`+rep.KPIs.Day+`.`+format+`"`)
	}
	_, _ = w.Write(b.Bytes())
}

// reportAt returns the last report built when it was generated at at
// (RFC 3339, as in its JSON).
func (h *Handler) reportAt(at string) (reports.Report, bool) {
	if at == "" {
		return reports.Report{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return reports.Report{}, false
	}
	h.reportMu.Lock()
	defer h.reportMu.Unlock()
	if h.lastReport == nil || !h.lastReport.GeneratedAt.Equal(t) {
		return reports.Report{}, false
	}
	return *h.lastReport, true
}

func (h *Handler) reportFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if h.d.ReportsDir == "" || !reports.ValidName(name) {
		jsonError(w, http.StatusNotFound, "no such report")
		return
	}
	b, err := os.ReadFile(filepath.Join(h.d.ReportsDir, name))
	if err != nil {
		jsonError(w, http.StatusNotFound, "no such report")
		return
	}
	w.Header().Set("Content-Type", reports.Formats[strings.TrimPrefix(filepath.Ext(name), ".")])
	w.Header().Set("Cache-Control", "no-store")
	if !strings.HasSuffix(name, ".html") {
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	_, _ = w.Write(b)
}
