//! The SQL of one janitor batch ([`super::Store::purge_expired`]), written once for both stores
//! (`$n` parameters work in SQLite too): `$1` is the cutoff time, `$2` the batch size.

/// Tokens expired before the cutoff, revoked or not. A revoked token that has not expired yet
/// waits for its expiry: finding tokens by revocation time would need an index on
/// `revoked_at`, and that index would make every revocation on PostgreSQL write all the table's
/// indexes instead of the row's page alone (migration `0005_hot_revocation`). Either way the
/// table is bounded by the tokens issued within a lifetime plus the retention.
pub(crate) const TOKENS: &str = "DELETE FROM access_tokens WHERE manage_id IN (\
    SELECT manage_id FROM access_tokens WHERE expires_at < $1 LIMIT $2)";

/// Grants that can no longer matter (their tokens and interaction go with them): cancelled or
/// rejected before the cutoff; issued before it with no token left; pending or approved since
/// before it with no interaction still open.
///
/// A grant is finalized after it is created, so each case implies `created_at < $1`; the
/// statement says so first, which lets both stores read only the grants created before the
/// cutoff through their `grants_by_creation` index instead of every grant (issue 7). (A grant
/// finalized by a node whose clock is behind the creating node's waits at most that skew
/// longer.)
pub(crate) const GRANTS: &str = "DELETE FROM grants WHERE id IN (\
    SELECT g.id FROM grants g WHERE g.created_at < $1 AND (\
    (g.state IN ('revoked', 'rejected') AND COALESCE(g.finalized_at, g.created_at) < $1) \
    OR (g.state = 'issued' AND COALESCE(g.finalized_at, g.created_at) < $1 \
        AND NOT EXISTS (SELECT 1 FROM access_tokens t WHERE t.grant_id = g.id)) \
    OR (g.state IN ('pending', 'approved') AND g.created_at < $1 \
        AND NOT EXISTS (SELECT 1 FROM interactions i \
                        WHERE i.grant_id = g.id AND i.expires_at >= $1))) \
    LIMIT $2)";

/// PostgreSQL advisory lock key of the janitor ("LKJANITR" in ASCII). Advisory locks are per
/// database, so clusters sharing a server do not contend.
pub const LOCK_KEY: i64 = 0x4C4B_4A41_4E49_5452;

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan SQLite makes for `sql` on the schema of every SQLite migration the store
    /// embeds, one step per line.
    fn sqlite_plan(sql: &str) -> String {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        for migration in super::super::sqlite::MIGRATOR.iter() {
            conn.execute_batch(&migration.sql).expect("migration");
        }
        let mut plan = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let steps = plan
            .query_map([0_i64, 1000], |row| row.get::<_, String>(3))
            .expect("steps")
            .collect::<Result<Vec<_>, _>>()
            .expect("steps");
        steps.join("\n")
    }

    /// A janitor batch holds SQLite's write lock while it runs: it must find its rows through
    /// an index, never by reading a whole table (1 million rows: 55 ms for the tokens, 190 ms
    /// for the grants).
    #[test]
    fn sqlite_batches_read_through_indexes() {
        let tokens = sqlite_plan(TOKENS);
        assert!(
            tokens.contains("USING INDEX access_tokens_by_expiry"),
            "{tokens}"
        );
        assert!(!tokens.contains("SCAN access_tokens"), "{tokens}");
        let grants = sqlite_plan(GRANTS);
        assert!(
            grants.contains("USING INDEX grants_by_creation"),
            "{grants}"
        );
        assert!(!grants.contains("SCAN g"), "{grants}");
    }
}
