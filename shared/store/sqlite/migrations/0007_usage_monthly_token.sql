-- 0007_usage_monthly_token: the sums of usage per token and month.
--
-- A report by token over 30 days read one row per token and day from
-- usage_daily_token: 30,000 rows for an organization of 1,000 busy tokens,
-- 40 ms of modernc's SQLite, most of the usage page's time. Rollups now
-- reads the months a period covers from here, a row per token, and only
-- the days of a month it covers in part from usage_daily_token; the month
-- a period ends in counts as covered when nothing was used after its end,
-- as is the case for every period that ends today.
CREATE TABLE usage_monthly_token (
	org_id            TEXT    NOT NULL,
	month             TEXT    NOT NULL, -- 2006-01
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
	PRIMARY KEY (org_id, month, token_id)
) WITHOUT ROWID;

INSERT INTO usage_monthly_token
SELECT org_id, substr(day, 1, 7), token_id, max(user_id), max(env), max(provider),
	sum(requests), sum(errors), sum(estimated), sum(prompt_tokens), sum(completion_tokens),
	sum(cached_tokens), sum(reasoning_tokens), sum(bytes_in), sum(bytes_out), sum(cost_micro),
	max(last_at)
FROM usage_daily_token
GROUP BY org_id, substr(day, 1, 7), token_id;
