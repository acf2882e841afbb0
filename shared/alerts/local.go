package alerts

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts/snsverify"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/web"
)

// LocalStore is what Local keeps in the store: subscriptions and the
// outbox of deliveries (the SQLite store has both).
type LocalStore interface {
	Subscription(ctx context.Context, orgID, id string) (store.Subscription, error)
	Subscriptions(ctx context.Context, orgID string) ([]store.Subscription, error)
	ConfirmSubscription(ctx context.Context, orgID, id string, at time.Time) (store.Subscription, error)
	DeleteSubscription(ctx context.Context, orgID, id string, ev kve.Event) error
	Members(ctx context.Context, orgID string) ([]kve.Member, error)
	store.Outbox
}

// LocalConfig configures Local. Zero values take the defaults noted.
type LocalConfig struct {
	// BaseURL is kve's public URL: the SubscribeURL, UnsubscribeURL and
	// SigningCertURL point under BaseURL + LocalPath.
	BaseURL string
	// Dir keeps the signing key and certificate (the data directory); ""
	// makes a key that lives as long as the process.
	Dir string
	// Transport dials webhooks: proxy.NewTransport, with the deployment's
	// private-address allowance (SECURITY T14, DESIGN §4). Required.
	Transport http.RoundTripper
	// Mail sends email alerts; nil refuses email subscriptions.
	Mail mail.Sender
	// TopicARN names local mode's topic in messages; default
	// arn:aws:sns:local:000000000000:kve-alerts.
	TopicARN string
	// Schedule is the wait before each retry of a failed delivery; its
	// length is the number of retries. Default (SECURITY G9): 5 s, 5 min,
	// 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h — ten attempts over about
	// 75 hours.
	Schedule []time.Duration
	// Jitter spreads each wait by up to ± this fraction; default 0.2.
	// Negative: none.
	Jitter  float64
	Timeout time.Duration    // per attempt, default 15 s (SECURITY G13)
	Now     func() time.Time // default time.Now
	Logger  *slog.Logger     // default slog.Default()
}

// DefaultSchedule is the retry schedule of SECURITY G9.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour}

// Local is local mode's channel, where there is no SNS: it delivers the
// same SNS-shaped messages, signed with its own key (SignatureVersion 2),
// to confirmed webhooks, and mails email subscribers through SMTP. Each
// message goes through an outbox in the store, so a delivery pending at a
// restart is made after it; failures are retried on Schedule; 3xx answers
// are never followed. It serves SNS's endpoints itself (Handler): the
// certificate, and the SubscribeURL every new webhook is sent first.
type Local struct {
	store    LocalStore
	dir      string
	base     string // BaseURL + LocalPath
	topic    string
	client   *http.Client
	mail     mail.Sender
	schedule []time.Duration
	jitter   float64
	now      func() time.Time
	log      *slog.Logger

	// The signing key is read (or made: RSA 2048 takes a moment) on first
	// use, not at start.
	signOnce sync.Once
	sign     *signer
	signErr  error

	kick     chan struct{}
	stop     context.CancelFunc
	ctx      context.Context
	done     chan struct{}
	mu       sync.Mutex
	inFlight map[string]bool // delivery ids being attempted
}

var _ Channel = (*Local)(nil)

// NewLocal returns local mode's channel and starts its delivery worker;
// Close stops it.
func NewLocal(st LocalStore, cfg LocalConfig) (*Local, error) {
	if cfg.Transport == nil {
		return nil, errors.New("alerts: local delivery needs the guarded transport")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Local{
		store: st, dir: cfg.Dir, base: strings.TrimRight(cfg.BaseURL, "/") + LocalPath, topic: cfg.TopicARN,
		mail: cfg.Mail, schedule: cfg.Schedule, jitter: cfg.Jitter, now: cfg.Now, log: cfg.Logger,
		kick: make(chan struct{}, 1), done: make(chan struct{}), inFlight: map[string]bool{},
	}
	if l.topic == "" {
		l.topic = "arn:aws:sns:local:000000000000:kve-alerts"
	}
	if l.schedule == nil {
		l.schedule = DefaultSchedule
	}
	if l.jitter == 0 {
		l.jitter = 0.2
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	l.client = &http.Client{
		Transport: cfg.Transport,
		Timeout:   timeout,
		// A webhook's redirect could point anywhere: never followed, the
		// 3xx is a failed attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	l.ctx, l.stop = context.WithCancel(context.Background())
	go l.run()
	return l, nil
}

// signer returns the signing key, reading or making it on first use.
func (l *Local) signer() (*signer, error) {
	l.signOnce.Do(func() { l.sign, l.signErr = loadSigner(l.dir, l.now()) })
	return l.sign, l.signErr
}

// Close stops the worker; an attempt in flight is abandoned and made again
// after the next start.
func (l *Local) Close() {
	l.stop()
	<-l.done
}

// CertURL is the signing certificate's URL, for a receiver's
// snsverify.Verifier.CertURLPrefixes (its prefix: CertURLPrefix).
func (l *Local) CertURL() string { return l.base + certFile }

// CertURLPrefix is the prefix a receiver of local mode trusts.
func (l *Local) CertURLPrefix() string { return l.base }

// TopicARN is local mode's topic.
func (l *Local) TopicARN() string { return l.topic }

// Subscribe implements Channel: it gives the subscription its ARN and the
// hash of its confirmation token; Subscribed sends the confirmation.
func (l *Local) Subscribe(_ context.Context, sub store.Subscription) (store.Subscription, error) {
	if sub.Protocol == "email" && l.mail == nil {
		return store.Subscription{}, kve.Errorf(kve.KindInvalid, "mail_not_configured",
			"this kve sends no mail: start local mode with --smtp and --mail-from to subscribe an email address")
	}
	sign, err := l.signer()
	if err != nil {
		return store.Subscription{}, err
	}
	sub.ARN = l.topic + ":" + sub.OrgID + "." + sub.ID
	sub.ConfirmHash = confirmHash(sign.confirmToken(sub.OrgID, sub.ID))
	sub.ConfirmedAt = time.Time{}
	return sub, nil
}

// Subscribed implements Channel: the first message to a new endpoint is
// its confirmation request — a signed SubscriptionConfirmation for a
// webhook, a mail with the link for an address — and nothing else goes
// there until the SubscribeURL is visited.
func (l *Local) Subscribed(ctx context.Context, sub store.Subscription) error {
	sign, err := l.signer()
	if err != nil {
		return err
	}
	token := sign.confirmToken(sub.OrgID, sub.ID)
	subscribeURL := l.base + "?" + url.Values{"Action": {"ConfirmSubscription"}, "TopicArn": {l.topic}, "Token": {token}}.Encode()
	now := l.now()
	d := store.Delivery{ID: kve.NewID("dlv_", now), OrgID: sub.OrgID, SubscriptionID: sub.ID, NextAt: now, CreatedAt: now}
	if sub.Protocol == "email" {
		d.Subject = confirmSubject
		d.Body = []byte("You have chosen to subscribe " + sub.Endpoint + " to kve's breach alerts for organization " +
			sub.OrgID + ".\n\nTo confirm the subscription, open this link:\n" + subscribeURL +
			"\n\nIf you did not ask for it, ignore this message: nothing is sent until it is confirmed.\n")
	} else {
		m := &snsverify.Message{
			Type: snsverify.TypeSubscriptionConfirmation, MessageID: newMessageID(), Token: token, TopicArn: l.topic,
			Message: "You have chosen to subscribe to the topic " + l.topic +
				".\nTo confirm the subscription, visit the SubscribeURL included in this message.",
			SubscribeURL: subscribeURL, Timestamp: snsTime(now), SigningCertURL: l.CertURL(),
		}
		if d.Body, err = l.signed(m); err != nil {
			return err
		}
	}
	if err := l.store.EnqueueDeliveries(ctx, []store.Delivery{d}); err != nil {
		return fmt.Errorf("queue subscription confirmation: %w", err)
	}
	l.Kick()
	return nil
}

// Confirmed implements Channel.
func (l *Local) Confirmed(_ context.Context, sub store.Subscription) (bool, error) {
	return !sub.ConfirmedAt.IsZero(), nil
}

// Unsubscribe implements Channel: local subscriptions live in the store
// only, which the caller updates.
func (l *Local) Unsubscribe(context.Context, store.Subscription) error { return nil }

// Publish implements Publisher: one delivery per confirmed subscription
// of the organization, queued in the outbox and handed to the worker at
// once (SECURITY G8: first attempt within seconds).
func (l *Local) Publish(ctx context.Context, n Notification) error {
	subs, err := l.store.Subscriptions(ctx, n.OrgID)
	if err != nil {
		return fmt.Errorf("publish alert: %w", err)
	}
	now := l.now()
	attrs := map[string]snsverify.Attribute{}
	for k, v := range n.Attributes() {
		attrs[k] = snsverify.Attribute{Type: "String", Value: v}
	}
	var ds []store.Delivery
	for _, sub := range subs {
		if sub.ConfirmedAt.IsZero() {
			continue
		}
		d := store.Delivery{ID: kve.NewID("dlv_", now), OrgID: sub.OrgID, SubscriptionID: sub.ID, NextAt: now, CreatedAt: now}
		if sub.Protocol == "email" {
			d.Subject = n.Subject
			d.Body = append(append([]byte{}, n.Message...), []byte("\n\n--\nTo stop receiving these alerts, open:\n"+l.unsubscribeURL(sub)+"\n")...)
		} else {
			m := &snsverify.Message{
				Type: snsverify.TypeNotification, MessageID: newMessageID(), TopicArn: l.topic, Subject: n.Subject,
				Message: string(n.Message), Timestamp: snsTime(now), SigningCertURL: l.CertURL(),
				UnsubscribeURL: l.unsubscribeURL(sub), MessageAttributes: attrs,
			}
			if d.Body, err = l.signed(m); err != nil {
				return err
			}
		}
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return nil
	}
	if err := l.store.EnqueueDeliveries(ctx, ds); err != nil {
		return fmt.Errorf("queue alert deliveries: %w", err)
	}
	l.Kick()
	return nil
}

func (l *Local) unsubscribeURL(sub store.Subscription) string {
	return l.base + "?" + url.Values{"Action": {"Unsubscribe"}, "SubscriptionArn": {sub.ARN}}.Encode()
}

func (l *Local) signed(m *snsverify.Message) ([]byte, error) {
	sign, err := l.signer()
	if err != nil {
		return nil, err
	}
	if err := sign.sign(m); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode SNS message: %w", err)
	}
	return b, nil
}

// Kick wakes the worker to deliver what is due.
func (l *Local) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *Local) run() {
	defer close(l.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := l.DeliverDue(l.ctx); err != nil && l.ctx.Err() == nil {
			l.log.Error("alert deliveries", "err", err)
		}
		select {
		case <-l.ctx.Done():
			return
		case <-l.kick:
		case <-tick.C:
		}
	}
}

// Delivery concurrency: a slow endpoint holds one of these, not the queue.
const (
	dueBatch   = 32
	concurrent = 4
)

// DeliverDue makes every delivery due now, a few at a time, and returns
// when they are done. The worker calls it on every kick and each second.
func (l *Local) DeliverDue(ctx context.Context) error {
	for {
		due, err := l.store.DueDeliveries(ctx, l.now(), dueBatch)
		if err != nil {
			return err
		}
		sem := make(chan struct{}, concurrent)
		var wg sync.WaitGroup
		started := 0
		for _, d := range due {
			l.mu.Lock()
			busy := l.inFlight[d.ID]
			l.inFlight[d.ID] = true
			l.mu.Unlock()
			if busy {
				continue
			}
			started++
			sem <- struct{}{}
			wg.Go(func() {
				defer func() {
					<-sem
					l.mu.Lock()
					delete(l.inFlight, d.ID)
					l.mu.Unlock()
				}()
				l.attempt(ctx, d)
			})
		}
		wg.Wait()
		if len(due) < dueBatch || started == 0 || ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// outcome is what became of one attempt.
type outcome struct {
	done       bool          // delivered, or refused for good
	gone       bool          // the endpoint answered 410: unconfirm the subscription
	retryAfter time.Duration // the endpoint asked for at least this wait
	err        string        // for the outbox and the log; never a URL with credentials
}

// attempt makes one attempt of d and records its outcome in the outbox.
func (l *Local) attempt(ctx context.Context, d store.Delivery) {
	sub, err := l.store.Subscription(ctx, d.OrgID, d.SubscriptionID)
	if kve.KindOf(err) == kve.KindNotFound {
		l.finish(ctx, d) // unsubscribed meanwhile
		return
	}
	if err != nil {
		l.log.Error("alert delivery: read subscription", "subscription_id", d.SubscriptionID, "err", err)
		return
	}
	var o outcome
	if sub.Protocol == "email" {
		o = l.sendMail(ctx, sub, d)
	} else {
		o = l.post(ctx, sub, d)
	}
	if ctx.Err() != nil {
		return // shutting down: not an attempt; it is made after the restart
	}
	log := l.log.With("org_id", d.OrgID, "subscription_id", d.SubscriptionID, "delivery_id", d.ID, "attempt", d.Attempts+1)
	switch {
	case o.gone:
		log.Warn("alert endpoint gone: subscription needs confirming again", "err", o.err)
		if _, err := l.store.ConfirmSubscription(ctx, d.OrgID, d.SubscriptionID, time.Time{}); err != nil {
			log.Error("alert delivery: unconfirm subscription", "err", err)
		}
		l.finish(ctx, d)
	case o.done:
		if o.err != "" {
			log.Warn("alert refused by endpoint", "err", o.err)
		} else {
			log.Debug("alert delivered", "latency_ms", l.now().Sub(d.CreatedAt).Milliseconds())
		}
		l.finish(ctx, d)
	case d.Attempts >= len(l.schedule):
		log.Error("alert delivery given up", "err", o.err)
		l.disable(ctx, d, o.err)
		l.finish(ctx, d)
	default:
		wait := max(l.spread(l.schedule[d.Attempts]), o.retryAfter)
		log.Warn("alert delivery failed: will retry", "err", o.err, "retry_in", wait.String())
		if err := l.store.RetryDelivery(ctx, d.ID, d.Attempts+1, l.now().Add(wait), o.err); err != nil &&
			kve.KindOf(err) != kve.KindNotFound {
			log.Error("alert delivery: reschedule", "err", err)
		}
	}
}

// disable stops sending to an endpoint that failed a delivery's whole
// retry schedule (about three days, SECURITY G9): its subscription needs
// confirming again, and the organization's Owners and Admins are told by
// mail, so a silenced alert channel does not go unnoticed.
func (l *Local) disable(ctx context.Context, d store.Delivery, lastErr string) {
	sub, err := l.store.Subscription(ctx, d.OrgID, d.SubscriptionID)
	if err != nil || sub.ConfirmedAt.IsZero() || sub.Protocol == "email" {
		return
	}
	if _, err := l.store.ConfirmSubscription(ctx, d.OrgID, d.SubscriptionID, time.Time{}); err != nil {
		l.log.Error("alert delivery: disable subscription", "subscription_id", sub.ID, "err", err)
		return
	}
	l.log.Warn("alert subscription disabled", "org_id", d.OrgID, "subscription_id", sub.ID)
	if l.mail == nil {
		return
	}
	members, err := l.store.Members(ctx, d.OrgID)
	if err != nil {
		l.log.Error("alert delivery: read members", "org_id", d.OrgID, "err", err)
		return
	}
	text := "kve stopped sending breach alerts to the webhook\n\n  " + kve.Truncate(sub.Endpoint, 200) +
		"\n\nbecause every delivery attempt failed for about three days (last error: " +
		kve.Truncate(lastErr, 200) + ").\nAdd the webhook again, or confirm it, on the Alerts page.\n"
	for _, m := range members {
		if m.Role != kve.RoleOwner && m.Role != kve.RoleAdmin {
			continue
		}
		if err := l.mail.Send(ctx, mail.Message{To: m.Email, Subject: "kve: an alert webhook was disabled", Text: text}); err != nil {
			l.log.Error("alert delivery: mail about disabled webhook", "org_id", d.OrgID, "err", err)
		}
	}
}

func (l *Local) finish(ctx context.Context, d store.Delivery) {
	if err := l.store.FinishDelivery(ctx, d.ID); err != nil {
		l.log.Error("alert delivery: finish", "delivery_id", d.ID, "err", err)
	}
}

// spread applies the jitter to a wait.
func (l *Local) spread(d time.Duration) time.Duration {
	if l.jitter <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + l.jitter*(2*rand.Float64()-1)))
}

// post sends a webhook delivery as SNS does: the JSON message, with SNS's
// headers, and the stack's Content-Type (application/json).
func (l *Local) post(ctx context.Context, sub store.Subscription, d store.Delivery) outcome {
	var m snsverify.Message
	if err := json.Unmarshal(d.Body, &m); err != nil {
		return outcome{done: true, err: "undecodable queued message"}
	}
	if m.Type == snsverify.TypeNotification && sub.ConfirmedAt.IsZero() {
		return outcome{done: true, err: "subscription no longer confirmed"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(d.Body))
	if err != nil {
		return outcome{done: true, err: "endpoint is not a URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Amazon Simple Notification Service Agent (kve local mode)")
	req.Header.Set("X-Amz-Sns-Message-Type", m.Type)
	req.Header.Set("X-Amz-Sns-Message-Id", m.MessageID)
	req.Header.Set("X-Amz-Sns-Topic-Arn", m.TopicArn)
	if m.Type == snsverify.TypeNotification {
		req.Header.Set("X-Amz-Sns-Subscription-Arn", sub.ARN)
	}
	res, err := l.client.Do(req)
	if err != nil {
		return outcome{err: deliveryErr(err)}
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	status := "status " + strconv.Itoa(res.StatusCode)
	switch code := res.StatusCode; {
	case code >= 200 && code < 300:
		return outcome{done: true}
	case code == http.StatusGone:
		return outcome{gone: true, err: status}
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return outcome{retryAfter: retryAfter(res.Header.Get("Retry-After"), l.now()), err: status}
	case code >= 400 && code < 500:
		// SNS counts other 4xx answers as delivered: retrying cannot help.
		return outcome{done: true, err: status}
	}
	return outcome{err: status} // 3xx (never followed) and 5xx: retried
}

// deliveryErr describes a failed request without its URL, which may hold
// credentials (https://user:pass@…).
func deliveryErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return err.Error()
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, 24*time.Hour)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

func (l *Local) sendMail(ctx context.Context, sub store.Subscription, d store.Delivery) outcome {
	if l.mail == nil {
		return outcome{done: true, err: "no mail configured"}
	}
	if d.Subject != confirmSubject && sub.ConfirmedAt.IsZero() {
		return outcome{done: true, err: "subscription no longer confirmed"}
	}
	if err := l.mail.Send(ctx, mail.Message{To: sub.Endpoint, Subject: d.Subject, Text: string(d.Body)}); err != nil {
		return outcome{err: err.Error()}
	}
	return outcome{done: true}
}

// Handler serves LocalPath: the signing certificate, and SNS's
// ConfirmSubscription and Unsubscribe actions as the SubscribeURL and
// UnsubscribeURL of local messages name them. Every route is anonymous:
// the confirmation token (an HMAC) or the subscription ARN is the proof,
// as with SNS.
func (l *Local) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		switch r.URL.Path {
		case LocalPath + certFile:
			sign, err := l.signer()
			if err != nil {
				l.log.Error("alert signing key", "err", err)
				http.Error(w, "no certificate", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Write(sign.certPEM)
			return
		case LocalPath:
		default:
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		var arn string
		var err error
		switch q.Get("Action") {
		case "ConfirmSubscription":
			arn, err = l.confirm(r.Context(), q.Get("TopicArn"), q.Get("Token"))
		case "Unsubscribe":
			arn, err = l.unsubscribe(r.Context(), q.Get("SubscriptionArn"), web.RemoteIP(r))
		default:
			err = kve.Errorf(kve.KindInvalid, "invalid_action", "unknown action")
		}
		if err != nil {
			status := http.StatusBadRequest
			switch kve.KindOf(err) {
			case kve.KindNotFound:
				status = http.StatusNotFound
			case kve.KindInternal, kve.KindUnavailable:
				l.log.Error("local sns action", "action", q.Get("Action"), "err", err)
				status = http.StatusInternalServerError
			}
			http.Error(w, kve.MessageOf(err), status)
			return
		}
		action := q.Get("Action")
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, "<%sResponse><%sResult><SubscriptionArn>%s</SubscriptionArn></%sResult></%sResponse>\n",
			action, action, html.EscapeString(arn), action, action)
	})
}

// confirmSubject is the subject of the confirmation mail, the one mail an
// unconfirmed address gets.
const confirmSubject = "kve: confirm your alert subscription"

var errBadToken = kve.Errorf(kve.KindNotFound, "not_found", "no subscription waits for this confirmation")

// confirm marks the subscription of a confirmation token confirmed.
func (l *Local) confirm(ctx context.Context, topic, token string) (string, error) {
	orgID, subID, _, ok := parseConfirmToken(token)
	if !ok || topic != l.topic {
		return "", errBadToken
	}
	sub, err := l.store.Subscription(ctx, orgID, subID)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return "", errBadToken
		}
		return "", err
	}
	if subtle.ConstantTimeCompare(confirmHash(token), sub.ConfirmHash) != 1 {
		return "", errBadToken
	}
	if _, err := l.store.ConfirmSubscription(ctx, orgID, subID, l.now().UTC()); err != nil {
		return "", err
	}
	l.log.Info("alert subscription confirmed", "org_id", orgID, "subscription_id", subID)
	return sub.ARN, nil
}

// unsubscribe deletes the subscription an UnsubscribeURL names.
func (l *Local) unsubscribe(ctx context.Context, arn, ip string) (string, error) {
	rest, ok := strings.CutPrefix(arn, l.topic+":")
	orgID, subID, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return "", kve.ErrNotFound
	}
	sub, err := l.store.Subscription(ctx, orgID, subID)
	if err != nil {
		return "", err
	}
	if sub.ARN != arn {
		return "", kve.ErrNotFound
	}
	ev := kve.Actor{UserID: "system", Email: "unsubscribe link", IP: ip}.
		Event(orgID, "alert_subscription.delete", subID, l.now()).With("protocol", sub.Protocol)
	if err := l.store.DeleteSubscription(ctx, orgID, subID, ev); err != nil {
		return "", err
	}
	return arn, nil
}
