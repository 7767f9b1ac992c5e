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
pub(crate) const GRANTS: &str = "DELETE FROM grants WHERE id IN (\
    SELECT g.id FROM grants g WHERE \
    (g.state IN ('revoked', 'rejected') AND COALESCE(g.finalized_at, g.created_at) < $1) \
    OR (g.state = 'issued' AND COALESCE(g.finalized_at, g.created_at) < $1 \
        AND NOT EXISTS (SELECT 1 FROM access_tokens t WHERE t.grant_id = g.id)) \
    OR (g.state IN ('pending', 'approved') AND g.created_at < $1 \
        AND NOT EXISTS (SELECT 1 FROM interactions i \
                        WHERE i.grant_id = g.id AND i.expires_at >= $1)) \
    LIMIT $2)";

/// PostgreSQL advisory lock key of the janitor ("LKJANITR" in ASCII). Advisory locks are per
/// database, so clusters sharing a server do not contend.
pub const LOCK_KEY: i64 = 0x4C4B_4A41_4E49_5452;
