package api

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

// usage answers GET …/usage: records (newest first, paged), or with by=day,
// token or model sums from the daily rollups; format=csv for a spreadsheet.
func (s *server) usage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	csvOut, err := wantCSV(q.Get("format"))
	if err != nil {
		return err
	}
	uq := manage.UsageQuery{TokenID: q.Get("token"), Member: q.Get("member"), Since: q.Get("since"),
		By: q.Get("by"), Cursor: q.Get("cursor"), Limit: limit}
	if uq.By == "" {
		page, err := s.svc.UsageRecords(r.Context(), r.PathValue("org"), principal(r), uq)
		if err != nil {
			return err
		}
		if csvOut {
			writeCSV(w, "usage.csv", recordHeader, items(page.Items, recordCSV))
			return nil
		}
		writeJSON(w, http.StatusOK, list[usageView]{Items: items(page.Items, viewUsage), Next: page.Next})
		return nil
	}
	rep, err := s.svc.Usage(r.Context(), r.PathValue("org"), principal(r), uq)
	if err != nil {
		return err
	}
	if csvOut {
		writeCSV(w, "usage-by-"+rep.By+".csv", rowHeader, items(rep.Rows, rowCSV))
		return nil
	}
	writeJSON(w, http.StatusOK, usageReportView{From: rep.From, To: rep.To, By: rep.By,
		Items: items(rep.Rows, viewRow), Total: viewRow(rep.Total)})
	return nil
}

func (s *server) unusedTokens(w http.ResponseWriter, r *http.Request) error {
	u, err := s.svc.UnusedTokens(r.Context(), r.PathValue("org"), principal(r), r.URL.Query().Get("since"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, unusedView{Since: u.Since, Items: items(u.Tokens, viewToken)})
	return nil
}

func (s *server) revokeTokens(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		IDs []string `json:"ids"`
	}
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	rev, err := s.svc.RevokeTokens(r.Context(), r.PathValue("org"), principal(r), in.IDs)
	if err != nil {
		return err
	}
	v := revocationView{Revoked: items(rev.Revoked, viewToken), Failed: []failedView{}}
	for _, id := range in.IDs {
		if err, ok := rev.Failed[id]; ok {
			v.Failed = append(v.Failed, failedView{ID: kve.Truncate(id, 64), Code: kve.CodeOf(err), Message: kve.MessageOf(err)})
			delete(rev.Failed, id)
		}
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// usageView is one usage record.
type usageView struct {
	RequestID        string    `json:"request_id"`
	At               time.Time `json:"at"`
	TokenID          string    `json:"token_id"`
	UserID           string    `json:"user_id,omitempty"`
	Env              kve.Env   `json:"env"`
	Provider         string    `json:"provider"`
	Method           string    `json:"method"`
	Path             string    `json:"path"`
	Model            string    `json:"model,omitempty"`
	Status           int       `json:"status"`
	DurationMS       float64   `json:"duration_ms"`
	UpstreamMS       float64   `json:"upstream_ms"`
	BytesIn          int64     `json:"bytes_in"`
	BytesOut         int64     `json:"bytes_out"`
	PromptTokens     int64     `json:"prompt_tokens"`
	CompletionTokens int64     `json:"completion_tokens"`
	CachedTokens     int64     `json:"cached_tokens"`
	ReasoningTokens  int64     `json:"reasoning_tokens"`
	Estimated        bool      `json:"estimated"`
	CostUSD          float64   `json:"cost_usd"`
	ClientIP         string    `json:"client_ip"`
	Origin           string    `json:"origin,omitempty"`
	ClientAborted    bool      `json:"client_aborted"`
	Reason           string    `json:"reason,omitempty"`
}

func viewUsage(u kve.Usage) usageView {
	return usageView{RequestID: u.RequestID, At: u.At, TokenID: u.TokenID, UserID: u.UserID, Env: u.Env,
		Provider: u.Provider, Method: u.Method, Path: u.Path, Model: u.Model, Status: u.Status,
		DurationMS: ms(u.Duration), UpstreamMS: ms(u.Upstream), BytesIn: u.BytesIn, BytesOut: u.BytesOut,
		PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, CachedTokens: u.CachedTokens,
		ReasoningTokens: u.ReasoningTokens, Estimated: u.Estimated, CostUSD: usd(u.CostMicro),
		ClientIP: u.ClientIP, Origin: u.Origin, ClientAborted: u.ClientAborted, Reason: u.Reason}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func usd(micro int64) float64    { return float64(micro) / 1e6 }

// rowView is one row of a usage report or its total.
type rowView struct {
	Day              string    `json:"day,omitempty"`
	TokenID          string    `json:"token_id,omitempty"`
	TokenName        string    `json:"token_name,omitempty"`
	Env              kve.Env   `json:"env,omitempty"`
	Provider         string    `json:"provider,omitempty"`
	Model            string    `json:"model,omitempty"`
	Requests         int64     `json:"requests"`
	Errors           int64     `json:"errors"`
	Estimated        int64     `json:"estimated"`
	PromptTokens     int64     `json:"prompt_tokens"`
	CompletionTokens int64     `json:"completion_tokens"`
	CachedTokens     int64     `json:"cached_tokens"`
	ReasoningTokens  int64     `json:"reasoning_tokens"`
	BytesIn          int64     `json:"bytes_in"`
	BytesOut         int64     `json:"bytes_out"`
	CostUSD          float64   `json:"cost_usd"`
	LastAt           time.Time `json:"last_at,omitzero"`
}

func viewRollup(r store.Rollup) rowView {
	return rowView{Day: r.Day, TokenID: r.TokenID, Env: r.Env, Provider: r.Provider, Model: r.Model,
		Requests: r.Requests, Errors: r.Errors, Estimated: r.Estimated, PromptTokens: r.PromptTokens,
		CompletionTokens: r.CompletionTokens, CachedTokens: r.CachedTokens, ReasoningTokens: r.ReasoningTokens,
		BytesIn: r.BytesIn, BytesOut: r.BytesOut, CostUSD: usd(r.CostMicro), LastAt: r.LastAt}
}

func viewRow(r manage.UsageRow) rowView {
	v := viewRollup(r.Rollup)
	v.TokenName = r.TokenName
	return v
}

type usageReportView struct {
	From  string    `json:"from"`
	To    string    `json:"to"`
	By    string    `json:"by"`
	Items []rowView `json:"items"`
	Total rowView   `json:"total"`
}

type unusedView struct {
	Since time.Time   `json:"since"`
	Items []tokenView `json:"items"`
}

type failedView struct {
	ID      string `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type revocationView struct {
	Revoked []tokenView  `json:"revoked"`
	Failed  []failedView `json:"failed"`
}

// wantCSV reads format: json (the default) or csv.
func wantCSV(format string) (bool, error) {
	switch format {
	case "", "json":
		return false, nil
	case "csv":
		return true, nil
	}
	return false, kve.Errorf(kve.KindInvalid, "invalid_format", "format must be json or csv")
}

var recordHeader = []string{"request_id", "at", "token_id", "user_id", "env", "provider", "method", "path", "model",
	"status", "duration_ms", "upstream_ms", "bytes_in", "bytes_out", "prompt_tokens", "completion_tokens",
	"cached_tokens", "reasoning_tokens", "estimated", "cost_usd", "client_ip", "origin", "client_aborted", "reason"}

func recordCSV(u kve.Usage) []string {
	return []string{u.RequestID, u.At.UTC().Format(time.RFC3339Nano), u.TokenID, u.UserID, string(u.Env),
		u.Provider, u.Method, u.Path, u.Model, strconv.Itoa(u.Status), num(ms(u.Duration)), num(ms(u.Upstream)),
		i64(u.BytesIn), i64(u.BytesOut), i64(u.PromptTokens), i64(u.CompletionTokens), i64(u.CachedTokens),
		i64(u.ReasoningTokens), strconv.FormatBool(u.Estimated), num(usd(u.CostMicro)), u.ClientIP, u.Origin,
		strconv.FormatBool(u.ClientAborted), u.Reason}
}

var rowHeader = []string{"day", "token_id", "token_name", "env", "provider", "model", "requests", "errors", "estimated",
	"prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "bytes_in", "bytes_out", "cost_usd", "last_at"}

func rowCSV(r manage.UsageRow) []string {
	return rollupCSV(r.Rollup, r.TokenName)
}

func rollupCSV(r store.Rollup, tokenName string) []string {
	last := ""
	if !r.LastAt.IsZero() {
		last = r.LastAt.UTC().Format(time.RFC3339)
	}
	return []string{r.Day, r.TokenID, tokenName, string(r.Env), r.Provider, r.Model, i64(r.Requests), i64(r.Errors),
		i64(r.Estimated), i64(r.PromptTokens), i64(r.CompletionTokens), i64(r.CachedTokens), i64(r.ReasoningTokens),
		i64(r.BytesIn), i64(r.BytesOut), num(usd(r.CostMicro)), last}
}

func i64(n int64) string   { return strconv.FormatInt(n, 10) }
func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// writeCSV answers a CSV file. Cells that a spreadsheet would run as a
// formula (a token name typed as "=HYPERLINK(…)") are quoted as text.
func writeCSV(w http.ResponseWriter, filename string, header []string, rows [][]string) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.Write(header)
	for _, row := range rows {
		for i, cell := range row {
			if cell != "" && (cell[0] == '=' || cell[0] == '+' || cell[0] == '-' && !numeric(cell) ||
				cell[0] == '@' || cell[0] == '\t' || cell[0] == '\r') {
				row[i] = "'" + cell
			}
		}
		cw.Write(row)
	}
	cw.Flush()
}

func numeric(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}
