// Package alerts detects misuse of kve tokens and tells the team at once:
// breach alerts (DESIGN §1, SECURITY T09, T18, T37, T39, T40, G8–G10).
//
// Detection sits beside the proxy's recorder (Recorder): every usage
// record of a known token, served or refused, goes through a Detector,
// which turns it into breach events of distinct types (an origin not on
// the token's list, a revoked token presented again, a dev token from a
// third client network, a usage spike…). A Responder turns events into
// incidents, one per (token, type), suspends the token when the rule and
// the token allow it, and claims at most one notification per (token,
// type) and window by a conditional write in the store, so that a flood
// of bad requests is one incident with a count and one message.
//
// Notifications go to a Channel: SNS on AWS (the topic fans out to the
// organization's HTTPS and email subscriptions, filtered by the message
// attribute org, and retries per the delivery policy the stack sets), or
// Local in local mode, which delivers the same SNS-shaped, signed JSON to
// webhooks and mails through SMTP, from an outbox in the store. Receivers
// verify either with package snsverify.
package alerts

import (
	"context"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Type is a kind of breach event; each has its own incident per token.
type Type string

// Breach types.
const (
	// OriginNotAllowed: a browser request from an origin not on the
	// token's list (or with the Origin header repeated).
	OriginNotAllowed Type = "origin_not_allowed"
	// ServerUse: a request without an Origin on a token that does not
	// allow server use.
	ServerUse Type = "server_use"
	// IPNotAllowed: a request from outside the token's IP ranges.
	IPNotAllowed Type = "ip_not_allowed"
	// RevokedTokenUsed, ExpiredTokenUsed, SuspendedTokenUsed: a token that
	// no longer works presented again (found by its HMAC).
	RevokedTokenUsed   Type = "revoked_token_used"
	ExpiredTokenUsed   Type = "expired_token_used"
	SuspendedTokenUsed Type = "suspended_token_used"
	// EnvMismatch: a token used where its environment does not belong: a
	// prd token from a localhost origin, a dev token from several client
	// networks.
	EnvMismatch Type = "env_mismatch"
	// UsageSpike: requests in a minute far above the token's own baseline
	// (see SpikeRule).
	UsageSpike Type = "usage_spike"
	// LeakReported: a secret-scanning service found the token in public.
	LeakReported Type = "leak_reported"
	// TestAlert is the message of "send a test alert": no incident.
	TestAlert Type = "test"
)

// Severities, most urgent first: message attributes a subscription's
// filter policy may select on.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityInfo     = "info"
)

// Severity returns how urgent an event of type t is: a leak or a token
// from the wrong environment is a key in an attacker's hands; a refused
// origin or network is often a misconfiguration.
func (t Type) Severity() string {
	switch t {
	case LeakReported:
		return SeverityCritical
	case EnvMismatch, UsageSpike, RevokedTokenUsed, SuspendedTokenUsed:
		return SeverityHigh
	case OriginNotAllowed, ServerUse, IPNotAllowed, ExpiredTokenUsed:
		return SeverityMedium
	}
	return SeverityInfo
}

// Event is one breach observation on one token.
type Event struct {
	Type      Type
	OrgID     string
	TokenID   string
	Env       kve.Env
	At        time.Time
	Count     int64 // how many requests it stands for; 0 means 1
	RequestID string
	// Samples: attacker-controlled text, cleaned with Sample.
	Origin    string
	IP        string
	UserAgent string
	Detail    string // what kve saw, in a sentence
	// Suspend asks for the token's suspension: granted when the token's
	// AutoSuspend is on.
	Suspend bool
}

func (e *Event) count() int64 { return max(e.Count, 1) }

// Store is what alerting reads and writes; store.Store satisfies it.
type Store interface {
	store.Alerts
	Token(ctx context.Context, orgID, id string) (kve.Token, error)
	UpdateToken(ctx context.Context, orgID, id string, fn func(*kve.Token) error, ev kve.Event) (kve.Token, error)
	Org(ctx context.Context, orgID string) (kve.Org, error)
}

// Publisher delivers a notification to its organization's subscriptions.
type Publisher interface {
	Publish(ctx context.Context, n Notification) error
}

// Channel is where alerts go and how subscriptions to them are made: SNS
// on AWS, Local in local mode.
type Channel interface {
	Publisher
	// Subscribe creates the endpoint's subscription (SNS) or prepares it
	// (local mode) and returns sub with what it set (ARN, confirmation).
	Subscribe(ctx context.Context, sub store.Subscription) (store.Subscription, error)
	// Subscribed runs once sub is stored: local mode sends its
	// confirmation request (SNS sends its own from Subscribe).
	Subscribed(ctx context.Context, sub store.Subscription) error
	// Confirmed reports whether the endpoint confirmed the subscription.
	Confirmed(ctx context.Context, sub store.Subscription) (bool, error)
	// Unsubscribe ends a subscription.
	Unsubscribe(ctx context.Context, sub store.Subscription) error
}

// Window is the flood control of SECURITY T18: at most one notification
// per (token, type) per window.
const Window = 5 * time.Minute

// system is the actor of what kve does on its own (a suspension).
var system = kve.Actor{UserID: "system", Email: "kve"}
