package store

import (
	"context"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Alerts holds what breach alerting keeps: one incident per (token, type),
// the counters detection reads across execution environments (a token's
// requests per minute, the client networks a token was used from), and
// each organization's alert subscriptions.
type Alerts interface {
	// RecordIncident adds an occurrence to the incident of its (token,
	// type), creating it, or reopening it when it was acknowledged (count
	// and first seen start again, the acknowledgement is cleared). Samples
	// (origin, IP, user agent, detail) become the occurrence's; request ids
	// join a list of the MaxRequestIDs most recent.
	//
	// When o.Window is above zero it also claims the incident's
	// notification, with a conditional write: the claim is granted, and
	// notify is true, only when no notification was claimed in the Window
	// before o.At; granting it records o.At as NotifiedAt. Of any number of
	// concurrent callers, at most one is granted per window.
	RecordIncident(ctx context.Context, o Occurrence) (inc Incident, notify bool, err error)
	// Incident reads one incident.
	Incident(ctx context.Context, orgID, id string) (Incident, error)
	// Incidents lists an organization's incidents, most recently seen
	// first (ties by id, descending).
	Incidents(ctx context.Context, orgID string, f IncidentFilter) (Page[Incident], error)
	// AckIncident records that userID acknowledged the incident at at,
	// with its audit event. An incident acknowledged already is
	// KindConflict.
	AckIncident(ctx context.Context, orgID, id, userID string, at time.Time, ev kve.Event) (Incident, error)

	// AddRequests adds n requests of a token to its count for the minute
	// starting at minute (a whole UTC minute) and returns that minute's
	// count so far, all writers together.
	AddRequests(ctx context.Context, orgID, tokenID string, minute time.Time, n int64) (int64, error)
	// Requests returns a token's request count over the minutes starting
	// in [from, to). Counts older than two hours may be gone.
	Requests(ctx context.Context, orgID, tokenID string, from, to time.Time) (int64, error)
	// AddNetwork records that a token was used from a client network (a
	// /24 or /48, as text) at at, and returns how many distinct networks
	// used it in the window up to at, this one included.
	AddNetwork(ctx context.Context, orgID, tokenID, network string, at time.Time, window time.Duration) (int, error)

	// CreateSubscription stores an alert subscription with its audit
	// event; an endpoint the organization subscribed already is
	// KindConflict.
	CreateSubscription(ctx context.Context, s Subscription, ev kve.Event) error
	// Subscription reads one subscription.
	Subscription(ctx context.Context, orgID, id string) (Subscription, error)
	// Subscriptions lists an organization's subscriptions, oldest first.
	Subscriptions(ctx context.Context, orgID string) ([]Subscription, error)
	// ConfirmSubscription sets when a subscription's endpoint confirmed it
	// (local mode, which confirms subscriptions itself); the zero time
	// marks it unconfirmed again, as an endpoint that answers 410 Gone
	// does.
	ConfirmSubscription(ctx context.Context, orgID, id string, at time.Time) (Subscription, error)
	// DeleteSubscription removes a subscription with its audit event.
	DeleteSubscription(ctx context.Context, orgID, id string, ev kve.Event) error
}

// MaxRequestIDs bounds the request ids an incident keeps.
const MaxRequestIDs = 10

// Incident is one breach type seen on one token: a flood of ten thousand
// bad requests is one incident with a count.
type Incident struct {
	ID        string // stable for the (token, type): a reopened incident keeps it
	OrgID     string
	TokenID   string
	TokenName string
	Env       kve.Env
	Type      string // alerts.Type: origin_not_allowed, usage_spike, leak_reported…
	Severity  string // alerts.Severity
	FirstSeen time.Time
	LastSeen  time.Time
	Count     int64
	// Samples from the latest occurrence: attacker-controlled text,
	// escaped and truncated before it was recorded (SECURITY T37).
	Origin    string
	IP        string
	UserAgent string
	Detail    string   // what kve saw, in a sentence
	Requests  []string // the most recent request ids, oldest first
	Suspended bool     // kve suspended the token for this incident
	// NotifiedAt is when a notification was last claimed.
	NotifiedAt time.Time
	AckedBy    string // user id
	AckedAt    time.Time
}

// Occurrence is what one or more breach events of the same (token, type)
// add to its incident.
type Occurrence struct {
	ID        string // the incident's id, derived from org, token and type
	OrgID     string
	TokenID   string
	TokenName string
	Env       kve.Env
	Type      string
	Severity  string
	At        time.Time
	Count     int64 // how many events this occurrence stands for, at least 1
	Origin    string
	IP        string
	UserAgent string
	Detail    string
	Requests  []string // request ids, oldest first
	Suspended bool     // the token was suspended for it
	// Window, when above zero, asks RecordIncident to claim the
	// notification (see there).
	Window time.Duration
}

// IncidentFilter narrows an incident list.
type IncidentFilter struct {
	TokenID string
	Open    bool // only incidents not acknowledged
	Cursor  string
	Limit   int
}

// Subscription is an organization's alert endpoint: an HTTP(S) webhook or
// an email address. On AWS it is an SNS subscription (ARN) filtered to the
// organization's alerts; in local mode kve delivers to it itself.
type Subscription struct {
	ID       string
	OrgID    string
	Protocol string // http, https or email
	Endpoint string // the webhook URL or the address
	ARN      string // the SNS subscription ARN (local mode: its own)
	// ConfirmHash is the SHA-256 of local mode's confirmation token; AWS
	// subscriptions leave it empty (SNS keeps its own).
	ConfirmHash []byte
	ConfirmedAt time.Time // local mode; on AWS, SNS says
	CreatedBy   string
	CreatedAt   time.Time
}

// Outbox is local mode's queue of alert deliveries, kept in the store so
// that a delivery pending at a restart is made after it. Only the embedded
// store has one: on AWS, SNS delivers and retries.
type Outbox interface {
	// EnqueueDeliveries stores deliveries to make.
	EnqueueDeliveries(ctx context.Context, ds []Delivery) error
	// DueDeliveries returns up to limit deliveries due at now, earliest
	// first.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// RetryDelivery records a failed attempt and when to make the next.
	RetryDelivery(ctx context.Context, id string, attempts int, next time.Time, lastErr string) error
	// FinishDelivery removes a delivery that was made or given up.
	FinishDelivery(ctx context.Context, id string) error
}

// Delivery is one message to one subscription. Its body is made once, so
// every attempt sends the same message (the same MessageId).
type Delivery struct {
	ID             string
	OrgID          string
	SubscriptionID string
	Subject        string // email only
	Body           []byte // webhook: the signed SNS-shaped JSON; email: the text
	Attempts       int    // made so far
	NextAt         time.Time
	CreatedAt      time.Time
	LastError      string
}
