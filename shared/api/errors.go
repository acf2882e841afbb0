package api

import (
	"math"
	"net/http"
	"strconv"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// statuses maps each error kind to its HTTP status: the one place where the
// management API decides a status for a failure.
var statuses = map[kve.Kind]int{
	kve.KindInvalid:         http.StatusBadRequest,
	kve.KindUnauthenticated: http.StatusUnauthorized,
	kve.KindForbidden:       http.StatusForbidden,
	kve.KindNotFound:        http.StatusNotFound,
	kve.KindConflict:        http.StatusConflict,
	kve.KindGone:            http.StatusGone,
	kve.KindTooLarge:        http.StatusRequestEntityTooLarge,
	kve.KindRateLimited:     http.StatusTooManyRequests,
	kve.KindUnavailable:     http.StatusServiceUnavailable,
	kve.KindInternal:        http.StatusInternalServerError,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError renders err as {"error":{"code","message"}} with the status of
// its kind. Only the user-safe message leaves; internal and unavailable
// errors are logged here, once, with their cause.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind := kve.KindOf(err)
	status, ok := statuses[kind]
	if !ok {
		kind, status = kve.KindInternal, http.StatusInternalServerError
	}
	switch kind {
	case kve.KindInternal:
		s.log.ErrorContext(r.Context(), "api_error", "request_id", requestID(r.Context()), "route", r.Pattern, "err", err)
	case kve.KindUnavailable:
		s.log.WarnContext(r.Context(), "api_unavailable", "request_id", requestID(r.Context()), "route", r.Pattern, "err", err)
	case kve.KindUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="kve"`)
	case kve.KindRateLimited:
		after := 60.0
		if d, ok := manage.RetryAfter(err); ok {
			after = math.Max(1, math.Ceil(d.Seconds()))
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(after)))
	}
	code := kve.CodeOf(err)
	if kind == kve.KindInternal {
		code = "internal"
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: kve.MessageOf(err)}})
}
