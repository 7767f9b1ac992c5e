-- A group of rotations, or of cancels, in one round trip instead of four (five alone).
--
-- Each such group locked its grant rows in one statement, then rotated (or cancelled) in a
-- second one, inside BEGIN ... COMMIT: four round trips to the database per group, in a queue
-- that commits one group at a time per node. The two statements must stay two: the second must
-- start with a snapshot taken after the first holds its locks, so that it sees every token a
-- rotation of the same grant committed before we got its lock (see `store/postgres_group.rs`).
--
-- PostgreSQL, "Transaction Isolation" (Read Committed): "Within a procedure or VOLATILE function
-- written in SQL or any of the standard procedural languages, each command starts with a new
-- snapshot". So a VOLATILE PL/pgSQL function that runs the same two statements keeps that rule,
-- and a function call, like any statement outside a transaction block, commits on its own.
-- Every rotation run and cancel run calls them: a group of one run, a write of its own (a group
-- of one, or a write replayed after its group failed), and a run inside a group of several,
-- whose transaction holds the grant locks already (taking them again does not wait).
--
-- `FOR NO KEY UPDATE` is the lock an `UPDATE grants SET state = ...` takes itself: it conflicts
-- with a concurrent cancel and with another rotation of the grant, not with the `FOR KEY SHARE`
-- locks that the foreign-key checks of token inserts take. Being a locking read, it waits for
-- the newest committed version of the row.

-- A run of rotations: `$1` old manage ids, `$2` times, `$3`..`$8` the successors' columns
-- (manage id, grant id, hash, created, expires, revoked), one element per rotation. Returns the
-- old tokens killed (`rotated`) and those of another grant than their successor (not `rotated`).
CREATE FUNCTION latchkey_rotate_tokens(
    text[], int8[], text[], text[], bytea[], int8[], int8[], int8[]
) RETURNS TABLE (old_manage_id text, rotated boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- The successors' grants, in id order (the order every group and single write takes them in).
    PERFORM id FROM grants WHERE id = ANY($4) ORDER BY id FOR NO KEY UPDATE;
    -- The run's statement. An old token of another grant than its successor ("stray") fails
    -- the whole run, and nothing may change: outside a transaction block this call commits on
    -- its own (nothing to roll back), and the caller then replays each rotation alone, which
    -- must find its old token untouched.
    RETURN QUERY
    WITH i AS (SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8)
               AS i(old, now, manage_id, grant_id, hash, created_at, expires_at, revoked_at)),
    stray AS (SELECT i.old FROM i JOIN access_tokens t ON t.manage_id = i.old
              WHERE t.manage_id = ANY($1) AND t.grant_id <> i.grant_id),
    killed AS (UPDATE access_tokens AS t SET revoked_at = i.now, rotated_to = i.manage_id
               FROM i, grants g WHERE t.manage_id = ANY($1) AND t.manage_id = i.old
               AND t.revoked_at IS NULL
               AND t.grant_id = i.grant_id AND g.id = t.grant_id AND g.state <> 'revoked'
               AND NOT EXISTS (SELECT 1 FROM stray)
               RETURNING t.manage_id AS old),
    inserted AS (INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at,
                 revoked_at)
                 SELECT i.manage_id, i.grant_id, i.hash, i.created_at, i.expires_at, i.revoked_at
                 FROM i JOIN killed k ON k.old = i.old RETURNING 1)
    SELECT k.old, TRUE FROM killed k UNION ALL SELECT s.old, FALSE FROM stray s;
END
$$;

-- A run of cancels: `$1` grant ids, `$2` times. The grants are locked first, so the token
-- sweep's snapshot holds every successor of a rotation that held a grant's lock before us.
CREATE FUNCTION latchkey_cancel_grants(text[], int8[]) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM id FROM grants WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE;
    WITH i AS (SELECT * FROM unnest($1, $2) AS i(grant_id, now)),
    g AS (UPDATE grants SET state = 'revoked', finalized_at = i.now FROM i
          WHERE grants.id = ANY($1) AND grants.id = i.grant_id AND grants.state <> 'revoked')
    UPDATE access_tokens AS t SET revoked_at = i.now FROM i
    WHERE t.grant_id = ANY($1) AND t.grant_id = i.grant_id AND t.revoked_at IS NULL;
END
$$;
