package api

import (
	"net/http"
	"time"

	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/usage"
)

// billingView is an organization's billing settings and month so far.
type billingView struct {
	MonthBudgetUSD float64   `json:"month_budget_usd"` // 0: none
	ContactEmail   string    `json:"contact_email"`
	Month          string    `json:"month"`
	MonthSpendUSD  float64   `json:"month_spend_usd"`
	UpdatedAt      time.Time `json:"updated_at,omitzero"`
}

func viewBilling(b manage.Billing) billingView {
	return billingView{MonthBudgetUSD: usd(b.MonthBudgetMicro), ContactEmail: b.Contact, Month: b.Month,
		MonthSpendUSD: usd(b.MonthSpendMicro), UpdatedAt: b.UpdatedAt}
}

func (s *server) billing(w http.ResponseWriter, r *http.Request) error {
	b, err := s.svc.Billing(r.Context(), r.PathValue("org"), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewBilling(b))
	return nil
}

func (s *server) updateBilling(w http.ResponseWriter, r *http.Request) error {
	var in manage.BillingInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	b, err := s.svc.UpdateBilling(r.Context(), r.PathValue("org"), principal(r), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewBilling(b))
	return nil
}

// priceView is one entry of a price list, in USD per million tokens.
type priceView struct {
	Provider  string  `json:"provider"`
	Model     string  `json:"model"`
	Input     float64 `json:"input"`
	Cached    float64 `json:"cached"`
	Output    float64 `json:"output"`
	MaxOutput int64   `json:"max_output,omitempty"`
	Override  bool    `json:"override,omitempty"`
}

func viewPrice(p usage.Price) priceView {
	return priceView{Provider: p.Provider, Model: p.Model, Input: p.Input, Cached: p.Cached, Output: p.Output,
		MaxOutput: p.MaxOutput, Override: p.Override}
}

type priceListView struct {
	AsOf      string      `json:"as_of"`
	Overrides []priceView `json:"overrides"`
	Embedded  []priceView `json:"embedded"`
	InUse     []priceView `json:"in_use"`
}

func viewPriceList(l manage.PriceList) priceListView {
	return priceListView{AsOf: l.AsOf, Overrides: items(l.Overrides, viewPrice), Embedded: items(l.Embedded, viewPrice),
		InUse: items(l.InUse, viewPrice)}
}

func (s *server) prices(w http.ResponseWriter, r *http.Request) error {
	l, err := s.svc.Prices(r.Context(), r.PathValue("org"), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewPriceList(l))
	return nil
}

func (s *server) setPrices(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Overrides []manage.PriceInput `json:"overrides"`
	}
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	l, err := s.svc.SetPrices(r.Context(), r.PathValue("org"), principal(r), in.Overrides)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewPriceList(l))
	return nil
}

// reportRowView is one line of a monthly cost report.
type reportRowView struct {
	TokenID   string `json:"token_id"`
	TokenName string `json:"token_name"`
	rowView
}

func viewReportRow(r manage.ReportRow) reportRowView {
	v := reportRowView{TokenID: r.TokenID, TokenName: r.TokenName, rowView: viewRollup(r.Rollup)}
	v.rowView.TokenID = ""
	return v
}

type reportView struct {
	Month string          `json:"month"`
	From  string          `json:"from"`
	To    string          `json:"to"`
	Items []reportRowView `json:"items"`
	Total rowView         `json:"total"`
}

// billingReport answers GET …/billing/report?month=2026-11, in JSON or
// (format=csv) CSV: one line per token, environment and model.
func (s *server) billingReport(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	csvOut, err := wantCSV(q.Get("format"))
	if err != nil {
		return err
	}
	rep, err := s.svc.BillingReport(r.Context(), r.PathValue("org"), principal(r), q.Get("month"))
	if err != nil {
		return err
	}
	if csvOut {
		writeCSV(w, "kve-cost-"+rep.Month+".csv", reportHeader, items(rep.Rows, func(row manage.ReportRow) []string {
			cells := rollupCSV(row.Rollup, row.TokenName)
			return append([]string{rep.Month}, cells[1:]...) // the month instead of a day
		}))
		return nil
	}
	writeJSON(w, http.StatusOK, reportView{Month: rep.Month, From: rep.From, To: rep.To,
		Items: items(rep.Rows, viewReportRow), Total: viewRollup(rep.Total)})
	return nil
}

var reportHeader = append([]string{"month"}, rowHeader[1:]...)
