-- Revoking an access token becomes a heap-only (HOT) update.
--
-- A revocation sets `revoked_at` (and a rotation `rotated_to`) on the token's row. While
-- `revoked_at` was indexed (for the janitor), PostgreSQL had to write a new entry into each of
-- the table's five indexes for every token revoked or rotated away: in a group of 40 rotations,
-- 4.4 ms went to killing the old tokens. With no index on a changed column, and room on the
-- row's page for its new version, the update touches the heap page only. Measured on a
-- two-core box, 64 clients, four alternating pairs: rotate 3.0k -> 3.4k/s, revoke 4.1k -> 4.7k/s
-- (medians), every update HOT.
--
-- The janitor now finds dead tokens by expiry alone (`access_tokens_by_expiry`): a revoked token
-- is removed once it has also expired and the retention has passed, like any token nobody
-- revoked, so the table stays bounded by the same figure.
--
-- `fillfactor = 70` leaves 30 % of each new heap page free for the new versions of its rows;
-- pages written before this migration stay full until rewritten (VACUUM FULL, CLUSTER).
DROP INDEX access_tokens_by_revocation;
ALTER TABLE access_tokens SET (fillfactor = 70);
