-- 0004_alerts: breach alerting. A token's alert settings and suspension;
-- incidents, one per (token, type); the counters detection reads; alert
-- subscriptions; and local mode's outbox of deliveries.

ALTER TABLE tokens ADD COLUMN alerts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN auto_suspend INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN suspended_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN suspension TEXT NOT NULL DEFAULT '';
-- Tokens issued before alerting existed get the defaults of new ones.
UPDATE tokens SET alerts = (env = 'prd'), auto_suspend = 1;

-- incidents: the id is derived from (org, token, type), so the row of a
-- (token, type) is found by its key and reopened in place after an
-- acknowledgement. requests is a JSON array of the latest request ids.
CREATE TABLE incidents (
	id          TEXT    PRIMARY KEY,
	org_id      TEXT    NOT NULL,
	token_id    TEXT    NOT NULL,
	token_name  TEXT    NOT NULL,
	env         TEXT    NOT NULL,
	type        TEXT    NOT NULL,
	severity    TEXT    NOT NULL,
	first_seen  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL,
	count       INTEGER NOT NULL,
	origin      TEXT    NOT NULL,
	ip          TEXT    NOT NULL,
	user_agent  TEXT    NOT NULL,
	detail      TEXT    NOT NULL,
	requests    TEXT    NOT NULL,
	suspended   INTEGER NOT NULL,
	notified_at INTEGER NOT NULL,
	acked_by    TEXT    NOT NULL,
	acked_at    INTEGER NOT NULL
);
CREATE INDEX incidents_by_org ON incidents (org_id, last_seen, id);

-- Detection counters, pruned as they are written: requests per token per
-- minute (unix minutes) for the usage-spike rule, and the client networks
-- a token was used from (last seen, unix milliseconds) for the dev-token rule.
CREATE TABLE token_minutes (
	org_id   TEXT    NOT NULL,
	token_id TEXT    NOT NULL,
	minute   INTEGER NOT NULL,
	count    INTEGER NOT NULL,
	PRIMARY KEY (org_id, token_id, minute)
) WITHOUT ROWID;

CREATE TABLE token_networks (
	org_id   TEXT    NOT NULL,
	token_id TEXT    NOT NULL,
	network  TEXT    NOT NULL,
	seen     INTEGER NOT NULL,
	PRIMARY KEY (org_id, token_id, network)
) WITHOUT ROWID;

CREATE TABLE alert_subscriptions (
	id           TEXT    PRIMARY KEY,
	org_id       TEXT    NOT NULL REFERENCES orgs (id),
	protocol     TEXT    NOT NULL,
	endpoint     TEXT    NOT NULL,
	arn          TEXT    NOT NULL,
	confirm_hash BLOB,
	confirmed_at INTEGER NOT NULL,
	created_by   TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	UNIQUE (org_id, endpoint)
);
CREATE INDEX alert_subscriptions_by_org ON alert_subscriptions (org_id, created_at, id);

-- alert_outbox: local mode's deliveries still to make, by when they are due.
CREATE TABLE alert_outbox (
	id              TEXT    PRIMARY KEY,
	org_id          TEXT    NOT NULL,
	subscription_id TEXT    NOT NULL,
	subject         TEXT    NOT NULL,
	body            BLOB    NOT NULL,
	attempts        INTEGER NOT NULL,
	next_at         INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	last_error      TEXT    NOT NULL
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_at, id);
