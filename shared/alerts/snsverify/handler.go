package snsverify

import (
	"context"
	"errors"
	"io"
	"net/http"
)

// maxBody bounds a message: SNS messages are at most 256 KiB, plus the
// envelope.
const maxBody = 512 << 10

// Handler is an SNS endpoint: it verifies every message, confirms a
// subscription when SNS (or kve local mode) asks, and passes each verified
// notification to notify. Answers follow SNS's retry rules: 400 for a
// message that does not verify (never retried), 500 when notify fails (SNS
// retries per the delivery policy), 200 otherwise.
func Handler(v *Verifier, notify func(ctx context.Context, m *Message) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		m, err := v.Parse(r.Context(), body)
		if err != nil {
			status := http.StatusBadRequest
			if !errors.Is(err, ErrSignature) && !errors.Is(err, ErrCertURL) && !errors.Is(err, ErrTopic) {
				status = http.StatusBadGateway // the certificate could not be fetched: worth a retry
			}
			http.Error(w, "message does not verify", status)
			return
		}
		switch m.Type {
		case TypeSubscriptionConfirmation:
			err = v.Confirm(r.Context(), m)
		case TypeNotification:
			err = notify(r.Context(), m)
		}
		if err != nil {
			http.Error(w, "not handled", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}
