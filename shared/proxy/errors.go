package proxy

import (
	"net/http"
	"strconv"
	"time"
)

// code is an error code of the proxy (contract: DESIGN §7). Each maps to one
// status and one message; the message never names a token, a key or an
// upstream URL.
type code string

const (
	codeInvalidToken code = "invalid_token"
	codeMissingToken code = "missing_token"
	codeAmbiguous    code = "ambiguous_credentials"
	codeOrigin       code = "origin_not_allowed"
	codeServerUse    code = "server_use_not_allowed"
	codeIP           code = "ip_not_allowed"
	codePath         code = "path_not_allowed"
	codeRateLimited  code = "rate_limited"
	codeBudget       code = "budget_exceeded"
	codeUnknownProv  code = "unknown_provider"
	codeTooLarge     code = "request_too_large"
	codeBadRequest   code = "invalid_request"
	codeUpstreamDown code = "upstream_unavailable"
	codeUpstreamSlow code = "upstream_timeout"
	codeStoreDown    code = "store_unavailable"
	codeClientGone   code = "client_closed_request"
	codeInternal     code = "internal_error"
)

var errorStatus = map[code]int{
	codeInvalidToken: http.StatusUnauthorized,
	codeMissingToken: http.StatusUnauthorized,
	codeAmbiguous:    http.StatusBadRequest,
	codeOrigin:       http.StatusForbidden,
	codeServerUse:    http.StatusForbidden,
	codeIP:           http.StatusForbidden,
	codePath:         http.StatusForbidden,
	codeRateLimited:  http.StatusTooManyRequests,
	codeBudget:       http.StatusTooManyRequests,
	codeUnknownProv:  http.StatusNotFound,
	codeTooLarge:     http.StatusRequestEntityTooLarge,
	codeBadRequest:   http.StatusBadRequest,
	codeUpstreamDown: http.StatusBadGateway,
	codeUpstreamSlow: http.StatusGatewayTimeout,
	codeStoreDown:    http.StatusServiceUnavailable,
	codeClientGone:   499, // nginx's "client closed request"; the client never sees it
	codeInternal:     http.StatusInternalServerError,
}

var errorMessage = map[code]string{
	codeInvalidToken: "The kve token is not valid.",
	codeMissingToken: "No kve token was sent. Send it as the provider's API key.",
	codeAmbiguous:    "Two different credentials were sent; send exactly one kve token.",
	codeOrigin:       "This token may not be used from this origin.",
	codeServerUse:    "This token may only be used from a browser origin on its list.",
	codeIP:           "This token may not be used from this network.",
	codePath:         "This token may not be used for this request.",
	codeRateLimited:  "Rate limit of this token reached; retry later.",
	codeBudget:       "Budget of this token is spent.",
	codeUnknownProv:  "No such provider.",
	codeTooLarge:     "Request body too large.",
	codeBadRequest:   "The request is malformed.",
	codeUpstreamDown: "The upstream API could not be reached.",
	codeUpstreamSlow: "The upstream API did not answer in time.",
	codeStoreDown:    "kve cannot check tokens right now; retry shortly.",
	codeClientGone:   "Client closed the request.",
	codeInternal:     "Internal error.",
}

// denial is a refusal decided before any upstream call: the code the client
// sees and the reason kve records (an invalid_token may be revoked, expired…).
type denial struct {
	code       code
	reason     string        // recorded, never shown: malformed, unknown, revoked, expired…
	message    string        // overrides the code's message when set
	retryAfter time.Duration // for rate limits
}

// writeError answers in OpenAI's error shape, which every supported SDK
// parses into its normal exception:
// {"error":{"message":…,"type":"kve_error","code":…}}.
func writeError(w http.ResponseWriter, d denial) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if d.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((d.retryAfter+time.Second-1)/time.Second)))
	}
	msg := d.message
	if msg == "" {
		msg = errorMessage[d.code]
	}
	w.WriteHeader(errorStatus[d.code])
	b := make([]byte, 0, 128)
	b = append(b, `{"error":{"message":`...)
	b = strconv.AppendQuote(b, msg)
	b = append(b, `,"type":"kve_error","code":"`...)
	b = append(b, d.code...)
	b = append(b, "\"}}\n"...)
	w.Write(b)
}
