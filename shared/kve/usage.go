package kve

import "time"

// Usage is the record of one proxied request: what was called, by which
// token, how it ended and what it consumed. Written once, deduplicated by
// RequestID.
type Usage struct {
	RequestID string    `json:"request_id"`
	At        time.Time `json:"at"` // when the request arrived
	OrgID     string    `json:"org_id"`
	TokenID   string    `json:"token_id"`
	UserID    string    `json:"user_id,omitempty"` // owner of a personal token
	Env       Env       `json:"env"`
	Provider  string    `json:"provider"`
	Method    string    `json:"method"`
	Path      string    `json:"path"` // without the query string
	Model     string    `json:"model,omitempty"`
	Status    int       `json:"status"`

	Duration time.Duration `json:"duration_ns"`          // arrival to last byte
	Upstream time.Duration `json:"upstream_ns,omitzero"` // upstream call to response head
	BytesIn  int64         `json:"bytes_in"`
	BytesOut int64         `json:"bytes_out"`

	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	CachedTokens     int64 `json:"cached_tokens,omitzero"`
	ReasoningTokens  int64 `json:"reasoning_tokens,omitzero"`
	Estimated        bool  `json:"estimated,omitzero"` // token counts guessed, the provider sent none
	CostMicro        int64 `json:"cost_micro_usd"`

	ClientIP      string `json:"client_ip"`
	Origin        string `json:"origin,omitempty"`
	UserAgent     string `json:"user_agent,omitempty"`    // truncated; a breach incident's sample
	ClientAborted bool   `json:"client_aborted,omitzero"` // the client went away before the end
	// Reason says why a request was refused or failed (revoked, origin,
	// upstream_timeout…): recorded and shown to the team by request id,
	// never to the client, which sees only the uniform error code.
	Reason string `json:"reason,omitempty"`
}

// Forwarded reports whether the request reached its upstream: a refusal
// (an invalid token, a wrong origin…) is recorded but is not a use of the
// token, so it must not move the token's last use.
func (u *Usage) Forwarded() bool { return u.Reason == "" || u.Upstream > 0 }

// Day returns the UTC day of the request, the key of per-day counters.
func (u *Usage) Day() string { return u.At.UTC().Format(time.DateOnly) }
