-- 0001_init: kve's first schema.
--
-- Times are UTC unix milliseconds, 0 for "never". Nested data that is never
-- filtered on (policies, key references, event details) is JSON; everything a
-- query filters or sorts on has its own column and, where lists need it, an
-- index in list order.

-- setup holds at most one row: the primary key makes CompleteSetup succeed once.
CREATE TABLE setup (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	user_id  TEXT    NOT NULL,
	done_at  INTEGER NOT NULL
);

CREATE TABLE users (
	id         TEXT    PRIMARY KEY,
	email      TEXT    NOT NULL UNIQUE,
	name       TEXT    NOT NULL,
	password   BLOB,
	created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
	id         TEXT    PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	kind       TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	hash       BLOB    NOT NULL UNIQUE,
	org_id     TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at, id);

CREATE TABLE orgs (
	id         TEXT    PRIMARY KEY,
	slug       TEXT    NOT NULL UNIQUE,
	name       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT    NOT NULL
);

-- members carries the member's email and name as the organization knows them,
-- so a member list is one query.
CREATE TABLE members (
	org_id    TEXT    NOT NULL REFERENCES orgs (id),
	user_id   TEXT    NOT NULL,
	email     TEXT    NOT NULL,
	name      TEXT    NOT NULL,
	role      TEXT    NOT NULL,
	joined_at INTEGER NOT NULL,
	PRIMARY KEY (org_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (user_id, joined_at, org_id);
CREATE INDEX members_by_org ON members (org_id, joined_at, user_id);

-- keys are addressed by name within their organization.
CREATE TABLE keys (
	org_id      TEXT    NOT NULL REFERENCES orgs (id),
	name        TEXT    NOT NULL,
	id          TEXT    NOT NULL UNIQUE,
	provider    TEXT    NOT NULL,
	upstream    TEXT    NOT NULL,
	auth        TEXT    NOT NULL, -- JSON kve.Auth
	secret      TEXT    NOT NULL,
	version     TEXT    NOT NULL,
	last4       TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	created_by  TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	rotated_at  INTEGER NOT NULL,
	PRIMARY KEY (org_id, name)
);

-- tokens has no foreign key to keys: a revoked token keeps naming a key that
-- was deleted after its revocation.
CREATE TABLE tokens (
	id          TEXT    PRIMARY KEY,
	org_id      TEXT    NOT NULL REFERENCES orgs (id),
	name        TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	env         TEXT    NOT NULL,
	owner_id    TEXT    NOT NULL,
	hint        TEXT    NOT NULL,
	hash        BLOB    NOT NULL UNIQUE,
	sealed      BLOB    NOT NULL,
	key_id      TEXT    NOT NULL,
	key_version TEXT    NOT NULL,
	key_ref     TEXT    NOT NULL, -- JSON: the rest of kve.KeyRef
	policy      TEXT    NOT NULL, -- JSON kve.Policy
	created_by  TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	revoked_at  INTEGER NOT NULL,
	last_used   INTEGER NOT NULL,
	version     INTEGER NOT NULL
);
CREATE INDEX tokens_by_org ON tokens (org_id, created_at, id);
CREATE INDEX tokens_by_key ON tokens (org_id, key_id, revoked_at);

-- spend is what each token cost per UTC day (2006-01-02), the counter
-- budgets read on every proxied request.
CREATE TABLE spend (
	token_id TEXT    NOT NULL,
	day      TEXT    NOT NULL,
	micro    INTEGER NOT NULL,
	PRIMARY KEY (token_id, day)
) WITHOUT ROWID;

-- events is the audit log: rows are inserted, never updated or deleted.
CREATE TABLE events (
	id       TEXT    PRIMARY KEY,
	org_id   TEXT    NOT NULL,
	at       INTEGER NOT NULL,
	actor_id TEXT    NOT NULL,
	actor    TEXT    NOT NULL,
	action   TEXT    NOT NULL,
	target   TEXT    NOT NULL,
	ip       TEXT    NOT NULL,
	detail   TEXT             -- JSON object, NULL when empty
);
CREATE INDEX events_by_org ON events (org_id, at, id);

CREATE TABLE usage (
	request_id        TEXT    PRIMARY KEY,
	org_id            TEXT    NOT NULL,
	token_id          TEXT    NOT NULL,
	user_id           TEXT    NOT NULL,
	at                INTEGER NOT NULL,
	env               TEXT    NOT NULL,
	provider          TEXT    NOT NULL,
	method            TEXT    NOT NULL,
	path              TEXT    NOT NULL,
	model             TEXT    NOT NULL,
	status            INTEGER NOT NULL,
	duration_ns       INTEGER NOT NULL,
	upstream_ns       INTEGER NOT NULL,
	bytes_in          INTEGER NOT NULL,
	bytes_out         INTEGER NOT NULL,
	prompt_tokens     INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	cached_tokens     INTEGER NOT NULL,
	reasoning_tokens  INTEGER NOT NULL,
	estimated         INTEGER NOT NULL,
	cost_micro        INTEGER NOT NULL,
	client_ip         TEXT    NOT NULL,
	origin            TEXT    NOT NULL,
	client_aborted    INTEGER NOT NULL
);
CREATE INDEX usage_by_org ON usage (org_id, at, request_id);
CREATE INDEX usage_by_token ON usage (org_id, token_id, at, request_id);
CREATE INDEX usage_by_user ON usage (org_id, user_id, at, request_id);
