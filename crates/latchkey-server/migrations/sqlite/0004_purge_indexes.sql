-- The janitor's reads find their rows through an index instead of reading whole tables.
--
-- A janitor batch on SQLite holds the database's one write lock for as long as its statement
-- runs, and every hot write (grant, rotation, revocation, cancel, OAuth token) waits meanwhile.
-- With no index on `access_tokens.expires_at` or `grants.created_at`, each round read both
-- tables in full even when nothing had expired: 55-61 ms and 190-199 ms with one million
-- grants and tokens (issue 7), growing with the tables, every five minutes. With these indexes
-- a batch reads only the rows past the cutoff. Both keys grow with time, so a new row's entry
-- lands on the right-most page, which the group's other writes have already made dirty.
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);
CREATE INDEX grants_by_creation ON grants (created_at);
