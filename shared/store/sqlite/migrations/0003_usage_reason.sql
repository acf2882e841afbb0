-- Why a request was refused or failed (revoked, origin, upstream_timeout…):
-- recorded with the usage record and shown to the team by request id.
ALTER TABLE usage ADD COLUMN reason TEXT NOT NULL DEFAULT '';
