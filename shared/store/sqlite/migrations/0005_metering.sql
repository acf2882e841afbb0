-- 0005_metering: what usage reports, budgets and billing read. Rollups
-- of usage records per UTC day and (token, model), token, or model, added
-- to as records are stored, so that a 30-day report never scans records; each
-- organization's spend per UTC month; billing settings; and the limits of
-- tokens beyond their policy.

-- usage_daily sums the records of one (day, token, model). user_id, env and
-- provider are the token's, copied so that a report by member or
-- environment reads no other table. errors counts records of status 400
-- and above; estimated those whose token counts kve guessed.
CREATE TABLE usage_daily (
	org_id            TEXT    NOT NULL,
	day               TEXT    NOT NULL,
	token_id          TEXT    NOT NULL,
	model             TEXT    NOT NULL,
	user_id           TEXT    NOT NULL,
	env               TEXT    NOT NULL,
	provider          TEXT    NOT NULL,
	requests          INTEGER NOT NULL,
	errors            INTEGER NOT NULL,
	estimated         INTEGER NOT NULL,
	prompt_tokens     INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	cached_tokens     INTEGER NOT NULL,
	reasoning_tokens  INTEGER NOT NULL,
	bytes_in          INTEGER NOT NULL,
	bytes_out         INTEGER NOT NULL,
	cost_micro        INTEGER NOT NULL,
	last_at           INTEGER NOT NULL,
	PRIMARY KEY (org_id, day, token_id, model)
) WITHOUT ROWID;
CREATE INDEX usage_daily_by_token ON usage_daily (org_id, token_id, day);
CREATE INDEX usage_daily_by_user ON usage_daily (org_id, user_id, day);

-- The same sums per (day, token) and per (day, model), for the reports
-- that need no finer key: a 30-day report by token reads one row per token
-- and day, by day or by model one row per model and day.
CREATE TABLE usage_daily_token (
	org_id            TEXT    NOT NULL,
	day               TEXT    NOT NULL,
	token_id          TEXT    NOT NULL,
	user_id           TEXT    NOT NULL,
	env               TEXT    NOT NULL,
	provider          TEXT    NOT NULL,
	requests          INTEGER NOT NULL,
	errors            INTEGER NOT NULL,
	estimated         INTEGER NOT NULL,
	prompt_tokens     INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	cached_tokens     INTEGER NOT NULL,
	reasoning_tokens  INTEGER NOT NULL,
	bytes_in          INTEGER NOT NULL,
	bytes_out         INTEGER NOT NULL,
	cost_micro        INTEGER NOT NULL,
	last_at           INTEGER NOT NULL,
	PRIMARY KEY (org_id, day, token_id)
) WITHOUT ROWID;
CREATE INDEX usage_daily_token_by_token ON usage_daily_token (org_id, token_id, day);

CREATE TABLE usage_daily_model (
	org_id            TEXT    NOT NULL,
	day               TEXT    NOT NULL,
	model             TEXT    NOT NULL,
	requests          INTEGER NOT NULL,
	errors            INTEGER NOT NULL,
	estimated         INTEGER NOT NULL,
	prompt_tokens     INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	cached_tokens     INTEGER NOT NULL,
	reasoning_tokens  INTEGER NOT NULL,
	bytes_in          INTEGER NOT NULL,
	bytes_out         INTEGER NOT NULL,
	cost_micro        INTEGER NOT NULL,
	last_at           INTEGER NOT NULL,
	PRIMARY KEY (org_id, day, model)
) WITHOUT ROWID;

-- org_spend is an organization's spend per UTC month (2006-01), which its
-- monthly budget reads.
CREATE TABLE org_spend (
	org_id TEXT    NOT NULL,
	month  TEXT    NOT NULL,
	micro  INTEGER NOT NULL,
	PRIMARY KEY (org_id, month)
) WITHOUT ROWID;

-- billing holds an organization's settings: monthly budget (micro-USD, 0 =
-- none), billing contact, and its overrides of the embedded price list
-- (JSON array of {provider, model, input, cached, output}).
CREATE TABLE billing (
	org_id       TEXT    PRIMARY KEY REFERENCES orgs (id),
	month_budget INTEGER NOT NULL,
	contact      TEXT    NOT NULL,
	prices       TEXT    NOT NULL,
	updated_at   INTEGER NOT NULL
);

-- token_limits holds a token's limits beyond its policy. No foreign key to
-- tokens: limits are written before the token they belong to.
CREATE TABLE token_limits (
	org_id       TEXT    NOT NULL REFERENCES orgs (id),
	token_id     TEXT    NOT NULL,
	tpm          INTEGER NOT NULL,
	month_budget INTEGER NOT NULL,
	PRIMARY KEY (org_id, token_id)
) WITHOUT ROWID;

-- Records stored before this migration count in the rollups and month
-- spend as if they had been added one by one.
INSERT INTO usage_daily
SELECT u.org_id, strftime('%Y-%m-%d', u.at / 1000, 'unixepoch'), u.token_id, u.model,
	max(u.user_id), max(u.env), max(u.provider), count(*), sum(u.status >= 400), sum(u.estimated),
	sum(u.prompt_tokens), sum(u.completion_tokens), sum(u.cached_tokens), sum(u.reasoning_tokens),
	sum(u.bytes_in), sum(u.bytes_out), sum(u.cost_micro), max(u.at)
FROM usage u JOIN tokens t ON t.org_id = u.org_id AND t.id = u.token_id
GROUP BY u.org_id, strftime('%Y-%m-%d', u.at / 1000, 'unixepoch'), u.token_id, u.model;

INSERT INTO usage_daily_token
SELECT org_id, day, token_id, max(user_id), max(env), max(provider), sum(requests), sum(errors), sum(estimated),
	sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(reasoning_tokens),
	sum(bytes_in), sum(bytes_out), sum(cost_micro), max(last_at)
FROM usage_daily GROUP BY org_id, day, token_id;

INSERT INTO usage_daily_model
SELECT org_id, day, model, sum(requests), sum(errors), sum(estimated),
	sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(reasoning_tokens),
	sum(bytes_in), sum(bytes_out), sum(cost_micro), max(last_at)
FROM usage_daily GROUP BY org_id, day, model;

INSERT INTO org_spend
SELECT org_id, substr(day, 1, 7), sum(cost_micro) FROM usage_daily GROUP BY org_id, substr(day, 1, 7);
