-- 0006_usage_chunks: usage records are stored in chunks, not a row each.
--
-- A row costs modernc's SQLite tens of µs of CPU to insert, with its
-- indexes, whatever it holds: one per record was most of what local mode's
-- metering cost (usage/README.md). A chunk holds up to 256 records of one
-- (organization, token, member) that arrived within a minute of each other,
-- encoded in data (chunks.go has the format), with the columns lists
-- filter and sort by; records are read by decoding the chunks a page needs.

-- first_at and last_at (unix milliseconds) bound the records' arrival.
-- Lists read chunks newest last_at first; first_at, in each index, lets a
-- page after a cursor skip chunks newer than it without reading them.
CREATE TABLE usage_chunks (
	id       INTEGER PRIMARY KEY,
	org_id   TEXT    NOT NULL,
	token_id TEXT    NOT NULL,
	user_id  TEXT    NOT NULL,
	first_at INTEGER NOT NULL,
	last_at  INTEGER NOT NULL,
	records  INTEGER NOT NULL,
	data     BLOB    NOT NULL
);
CREATE INDEX usage_chunks_by_org ON usage_chunks (org_id, last_at, first_at);
CREATE INDEX usage_chunks_by_token ON usage_chunks (org_id, token_id, last_at, first_at);
CREATE INDEX usage_chunks_by_user ON usage_chunks (org_id, user_id, last_at, first_at);

-- usage_ids holds the request id of every stored record: a record whose id
-- is here is stored already and counts nothing (a retried batch counts once).
CREATE TABLE usage_ids (
	request_id TEXT PRIMARY KEY
) WITHOUT ROWID;

INSERT INTO usage_ids SELECT request_id FROM usage;

-- The records of the usage table are moved into chunks, and the table
-- dropped, by Go code that runs right after this file in the same
-- transaction (chunkUsageRows in migrate.go): SQL cannot write the chunk
-- format.
