-- 0002_teams: invites, organization deletion, and the indexes offboarding
-- reads by.

-- invites are addressed by id within their organization and found by the
-- HMAC of their code. Times are 0 for "never".
CREATE TABLE invites (
	id          TEXT    PRIMARY KEY,
	org_id      TEXT    NOT NULL REFERENCES orgs (id),
	email       TEXT    NOT NULL,
	role        TEXT    NOT NULL,
	hash        BLOB    NOT NULL UNIQUE,
	invited_by  TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	accepted_at INTEGER NOT NULL,
	accepted_by TEXT    NOT NULL,
	revoked_at  INTEGER NOT NULL
);
CREATE INDEX invites_by_org ON invites (org_id, created_at, id);

-- A deleted organization keeps its row (its slug stays taken, its audit log
-- stays readable by id) but is not found by any read.
ALTER TABLE orgs ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;

-- A member's personal tokens, for offboarding.
CREATE INDEX tokens_by_owner ON tokens (org_id, owner_id, revoked_at);

-- API tokens limited to one organization, for offboarding and deletion.
CREATE INDEX sessions_by_org ON sessions (org_id, user_id);
