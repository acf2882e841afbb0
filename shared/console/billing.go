package console

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/usage"
)

type billingView struct {
	Slug     string
	Settings *form

	Month      string // the current UTC month
	Spend      int64  // micro-USD spent in it
	Budget     int64  // micro-USD, 0: none
	Percent    int64  // of the budget spent
	SpendValue string // the meter's value and maximum, in USD
	BudgetMax  string

	AsOf   string // the embedded price list's date
	Prices []priceRow
	Form   *form // the overrides' form

	Report reportView
}

// priceRow is a model's price, in USD per million tokens.
type priceRow struct {
	Provider, Model       string
	Input, Cached, Output string
	MaxOutput             int64
	Override              bool
}

func priceRowOf(p usage.Price) priceRow {
	return priceRow{Provider: p.Provider, Model: p.Model, Input: perMillion(p.Input), Cached: perMillion(p.Cached),
		Output: perMillion(p.Output), MaxOutput: p.MaxOutput, Override: p.Override}
}

func perMillion(usd float64) string { return strconv.FormatFloat(usd, 'f', -1, 64) }

// reportView is the cost report of one month.
type reportView struct {
	Month, From, To string
	Rows            []reportRow // the first maxReportRows, by environment and token
	More            int         // rows beyond those, in the CSV
	Envs            []envCost   // subtotals per environment
	Total           usageRow
	CSV             string
}

// reportRow is a token's use of a model in the month, formatted.
type reportRow struct {
	TokenID, TokenName, Provider, Model string
	Env                                 kve.Env
	Requests, Prompt, Completion, Cost  string
}

type envCost struct {
	Env      kve.Env
	Requests int64
	Cost     int64
}

// maxReportRows bounds the report's table on the page; the CSV holds
// every row.
const maxReportRows = 200

// billing shows the organization's monthly budget and billing contact,
// the price list in use with the organization's overrides, and a month's
// cost report per token, environment and model (Owner).
func (s *server) billing(w http.ResponseWriter, r *http.Request) error {
	return s.billingPage(w, r, http.StatusOK, nil, nil)
}

// billingPage renders the billing page; a nil form is filled from what is
// stored, a given one shows what was submitted and why it was refused.
func (s *server) billingPage(w http.ResponseWriter, r *http.Request, status int, settings, prices *form) error {
	p, m := principal(r), membership(r)
	b, err := s.svc.Billing(r.Context(), orgRef(r), p)
	if err != nil {
		return err
	}
	list, err := s.svc.Prices(r.Context(), orgRef(r), p)
	if err != nil {
		return err
	}
	month := cmp.Or(strings.TrimSpace(r.URL.Query().Get("month")), b.Month)
	rep, err := s.svc.BillingReport(r.Context(), orgRef(r), p, month)
	if err != nil {
		return err
	}
	v := billingView{Slug: m.Org.Slug, Settings: settings, Form: prices, Month: b.Month, Spend: b.MonthSpendMicro,
		Budget: b.MonthBudgetMicro, SpendValue: dollars(b.MonthSpendMicro), AsOf: list.AsOf,
		Prices: make([]priceRow, 0, len(list.InUse))}
	if b.MonthBudgetMicro > 0 {
		v.Percent = b.MonthSpendMicro * 100 / b.MonthBudgetMicro
		v.BudgetMax = dollars(b.MonthBudgetMicro)
	}
	if v.Settings == nil {
		v.Settings = newForm(url.Values{"email": {b.Contact}})
		if b.MonthBudgetMicro > 0 {
			v.Settings.Values.Set("budget_usd", v.BudgetMax)
		}
	}
	for _, pr := range list.InUse {
		v.Prices = append(v.Prices, priceRowOf(pr))
	}
	if v.Form == nil {
		lines := make([]string, 0, len(list.Overrides))
		for _, o := range list.Overrides {
			lines = append(lines, strings.Join([]string{o.Provider, o.Model, perMillion(o.Input), perMillion(o.Cached), perMillion(o.Output)}, " "))
		}
		v.Form = newForm(url.Values{"prices": {strings.Join(lines, "\n")}})
	}
	v.Report = reportView{Month: rep.Month, From: rep.From, To: rep.To,
		Total: usageRowOf(manage.UsageRow{Rollup: rep.Total}),
		CSV:   s.base + "/api/v1/orgs/" + url.PathEscape(m.Org.Slug) + "/billing/report?" + url.Values{"month": {rep.Month}, "format": {"csv"}}.Encode()}
	for i, row := range rep.Rows { // sorted by environment
		if n := len(v.Report.Envs); n == 0 || v.Report.Envs[n-1].Env != row.Env {
			v.Report.Envs = append(v.Report.Envs, envCost{Env: row.Env})
		}
		e := &v.Report.Envs[len(v.Report.Envs)-1]
		e.Requests += row.Requests
		e.Cost += row.CostMicro
		if i >= maxReportRows {
			v.Report.More++
			continue
		}
		v.Report.Rows = append(v.Report.Rows, reportRow{TokenID: row.TokenID, TokenName: cmp.Or(row.TokenName, row.TokenID),
			Provider: row.Provider, Model: row.Model, Env: row.Env, Requests: count(row.Requests),
			Prompt: count(row.PromptTokens), Completion: count(row.CompletionTokens), Cost: usd(row.CostMicro)})
	}
	return s.render(w, r, status, "billing", "Billing", "Billing", v)
}

// updateBilling sets the monthly budget (empty: none) and the billing
// contact (empty: none) (Owner).
func (s *server) updateBilling(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	budget, ok := optionalFloat(f, "budget_usd")
	if !ok {
		return s.billingPage(w, r, http.StatusUnprocessableEntity, f, nil)
	}
	if budget == nil {
		budget = new(float64)
	}
	contact := strings.TrimSpace(f.Get("email"))
	in := manage.BillingInput{MonthBudgetUSD: budget, ContactEmail: &contact}
	if _, err := s.svc.UpdateBilling(r.Context(), orgRef(r), principal(r), in); err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.billingPage(w, r, status, f, nil)
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/billing?done=billing_updated")
}

// setPrices replaces the organization's price overrides with the form's,
// one per line: provider, model, then USD per million input, cached input
// and output tokens (Owner). An empty form removes every override.
func (s *server) setPrices(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	in, msg := parsePrices(f.Get("prices"))
	if msg != "" {
		f.Errors["prices"] = msg
		return s.billingPage(w, r, http.StatusUnprocessableEntity, nil, f)
	}
	if _, err := s.svc.SetPrices(r.Context(), orgRef(r), principal(r), in); err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.billingPage(w, r, status, nil, f)
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/billing?done=prices_updated#prices")
}

// parsePrices reads the overrides' lines: five fields each, separated by
// spaces, tabs or commas. A line it cannot read comes back as a message
// for the form; manage checks the values.
func parsePrices(text string) ([]manage.PriceInput, string) {
	out := []manage.PriceInput{}
	for i, l := range lines(text) {
		fields := strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if len(fields) != 5 {
			return nil, fmt.Sprintf("Line %d: write the provider, the model and three prices (input, cached input, output), such as “openai gpt-4o 2.5 1.25 10”.", i+1)
		}
		var usd [3]float64
		for j, v := range fields[2:] {
			n, err := strconv.ParseFloat(strings.TrimPrefix(v, "$"), 64)
			if err != nil {
				return nil, fmt.Sprintf("Line %d: “%s” is not a price in USD per million tokens.", i+1, kve.Truncate(v, 20))
			}
			usd[j] = n
		}
		out = append(out, manage.PriceInput{Provider: strings.ToLower(fields[0]), Model: fields[1],
			Input: usd[0], Cached: usd[1], Output: usd[2]})
	}
	return out, ""
}
