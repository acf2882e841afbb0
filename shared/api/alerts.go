package api

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

// incidentView is one row of the breach alert log. Samples are attacker
// text, recorded escaped and truncated; JSON escapes them again.
type incidentView struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Severity   string         `json:"severity"`
	Env        kve.Env        `json:"environment"`
	Token      incidentToken  `json:"token"`
	Count      int64          `json:"count"`
	FirstSeen  time.Time      `json:"first_seen"`
	LastSeen   time.Time      `json:"last_seen"`
	Sample     incidentSample `json:"sample"`
	Detail     string         `json:"detail"`
	RequestIDs []string       `json:"request_ids"`
	Suspended  bool           `json:"token_suspended"`
	NotifiedAt time.Time      `json:"notified_at,omitzero"`
	AckedBy    string         `json:"acknowledged_by,omitempty"`
	AckedAt    time.Time      `json:"acknowledged_at,omitzero"`
}

type incidentToken struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type incidentSample struct {
	Origin    string `json:"origin,omitempty"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

func viewIncident(inc store.Incident) incidentView {
	return incidentView{ID: inc.ID, Type: inc.Type, Severity: inc.Severity, Env: inc.Env,
		Token: incidentToken{ID: inc.TokenID, Name: inc.TokenName}, Count: inc.Count, FirstSeen: inc.FirstSeen,
		LastSeen: inc.LastSeen, Sample: incidentSample{Origin: inc.Origin, IP: inc.IP, UserAgent: inc.UserAgent},
		Detail: inc.Detail, RequestIDs: items(inc.Requests, func(id string) string { return id }),
		Suspended: inc.Suspended, NotifiedAt: inc.NotifiedAt, AckedBy: inc.AckedBy, AckedAt: inc.AckedAt}
}

// subscriptionView is an alert subscription: its endpoint without the
// password a webhook URL may carry, and whether the endpoint confirmed it.
type subscriptionView struct {
	ID        string    `json:"id"`
	Protocol  string    `json:"protocol"`
	Endpoint  string    `json:"endpoint"`
	Confirmed bool      `json:"confirmed"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

func viewSubscription(s manage.AlertSubscription) subscriptionView {
	return subscriptionView{ID: s.ID, Protocol: s.Protocol, Endpoint: manage.RedactEndpoint(s.Endpoint),
		Confirmed: s.Confirmed, CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt}
}

func (s *server) incidents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	page, err := s.svc.Incidents(r.Context(), r.PathValue("org"), principal(r), manage.IncidentQuery{
		TokenID: q.Get("token"), Open: q.Get("open") == "true", Cursor: q.Get("cursor"), Limit: limit,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[incidentView]{Items: items(page.Items, viewIncident), Next: page.Next})
	return nil
}

func (s *server) ackIncident(w http.ResponseWriter, r *http.Request) error {
	inc, err := s.svc.AckIncident(r.Context(), r.PathValue("org"), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewIncident(inc))
	return nil
}

func (s *server) alertSubscriptions(w http.ResponseWriter, r *http.Request) error {
	subs, err := s.svc.AlertSubscriptions(r.Context(), r.PathValue("org"), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[subscriptionView]{Items: items(subs, viewSubscription)})
	return nil
}

func (s *server) subscribe(w http.ResponseWriter, r *http.Request) error {
	var in manage.SubscriptionInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	sub, err := s.svc.Subscribe(r.Context(), r.PathValue("org"), principal(r), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewSubscription(sub))
	return nil
}

func (s *server) unsubscribe(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.Unsubscribe(r.Context(), r.PathValue("org"), principal(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) testAlert(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.TestAlert(r.Context(), r.PathValue("org"), principal(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted) // the channel delivers on its own schedule
	return nil
}

// secretScanning answers GitHub's secret scanning partner program: a
// signed JSON array of matches in, an array of verdicts out (GitHub's
// format, not this API's {"items"} lists). The body is verified as it
// came, byte for byte.
func (s *server) secretScanning(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return kve.Errorf(kve.KindTooLarge, "request_too_large", "the request body is over %d bytes", tooLarge.Limit)
		}
		return kve.Wrap(kve.KindInvalid, "invalid_body", "the request body could not be read", err)
	}
	verdicts, err := s.svc.ReportLeaks(r.Context(), r.Header.Get("Github-Public-Key-Identifier"),
		r.Header.Get("Github-Public-Key-Signature"), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, verdicts)
	return nil
}
