package proxy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Meter admits requests against their token's rate limits and budgets
// (tokens per minute, spend per day and month, the organization's spend per
// month) before they are forwarded, and holds each one's worst-case cost
// until its record settles it. Implementations: usage.Local (one process,
// in memory) and usage.Shared (DynamoDB, across execution environments).
type Meter interface {
	// Admit runs once every policy check passed and the request body was
	// inspected, before the upstream call. It refuses with a *Limited, or
	// fails with another error, on which the proxy answers 503 (a meter
	// that cannot keep a budget must not let spend through unmetered).
	// An admitted request's record reaches the Recorder with its Grant in
	// the context (GrantOf), which settles it.
	Admit(ctx context.Context, t *kve.Token, u *kve.Usage, ask Ask) (Grant, error)
}

// Ask is what the request asks for, beyond its usage record so far.
type Ask struct {
	// MaxOutputTokens is the request's max_tokens (OpenAI, Anthropic),
	// max_completion_tokens or max_output_tokens (OpenAI),
	// generationConfig.maxOutputTokens (Gemini); 0 when it names none.
	MaxOutputTokens int64
}

// Grant is what Admit allowed.
type Grant struct {
	// Remaining is what is left, in micro-USD, of the tightest budget the
	// meter knows of after this request's hold; -1 when none applies.
	// The proxy reports it in X-Kve-Budget-Remaining.
	Remaining int64
	// Hold is the meter's own state of the request, for settling it.
	Hold any
}

type grantKey struct{}

// WithGrant returns ctx carrying g, as the proxy passes an admitted
// request's record to the Recorder.
func WithGrant(ctx context.Context, g *Grant) context.Context {
	return context.WithValue(ctx, grantKey{}, g)
}

// GrantOf returns the grant of the request whose record is being recorded,
// or nil for a request that was not admitted (refused before, or no Meter).
func GrantOf(ctx context.Context) *Grant {
	g, _ := ctx.Value(grantKey{}).(*Grant)
	return g
}

// Limited is Admit's refusal: over a rate limit (429 rate_limited) or a
// budget (429 budget_exceeded), both with Retry-After.
type Limited struct {
	Budget     bool
	RetryAfter time.Duration
	Reason     string // recorded: tpm, budget_day, budget_month, budget_org_month…
	Message    string // shown to the client; the code's message when empty
}

func (l *Limited) Error() string { return "limited: " + l.Reason }

// budgetHeader reports the budget left (SECURITY G10: a developer sees what
// a runaway loop has left to spend).
const budgetHeader = "X-Kve-Budget-Remaining"

// admit asks the Meter, when there is one, to admit the request.
func (h *Handler) admit(r *http.Request, c *call) *denial {
	if h.deps.Meter == nil {
		return nil
	}
	g, err := h.deps.Meter.Admit(r.Context(), c.tok, &c.usage, c.ask)
	var lim *Limited
	switch {
	case errors.As(err, &lim):
		d := &denial{code: codeRateLimited, reason: lim.Reason, message: lim.Message, retryAfter: lim.RetryAfter}
		if lim.Budget {
			d.code = codeBudget
			c.remaining = 0
		}
		return d
	case err != nil:
		h.log.Error("meter", "request_id", c.usage.RequestID, "token_id", c.tok.ID, "err", err)
		return &denial{code: codeStoreDown, reason: "meter_unavailable"}
	}
	c.grant, c.remaining = &g, g.Remaining
	return nil
}

// setRemaining reports the budget left in h when the meter knows it, and
// never lets an upstream's header of the same name through.
func (c *call) setRemaining(h http.Header) {
	h.Del(budgetHeader)
	if c.remaining >= 0 {
		h.Set(budgetHeader, formatUSD(c.remaining))
	}
}

// formatUSD writes micro-USD as USD: 1990000 → "1.99".
func formatUSD(micro int64) string {
	return strconv.FormatFloat(float64(max(micro, 0))/1e6, 'f', -1, 64)
}
