#!/usr/bin/env python3
"""WAL frames (4 KiB pages) that SQLite writes per GNAP token write, by page layout
(BENCHMARKS.md, round 11).

    scripts/sqlite-frames-per-write.py [TOKENS] [GROUP]

Builds Latchkey's SQLite schema from crates/latchkey-server/migrations/sqlite in a scratch
folder, stores TOKENS grants with one token each (ids and token keys shaped like the server's:
time first), then commits rotations and revocations in transactions of GROUP writes (what the
server's group commit does under load) and counts the frames the WAL grew by. Rotations and
revocations go over the stored tokens in issue order (the cheapest case) and in random order
(a real load, where tokens are managed at any time after issue; `latchkey bench` is close to
this, as it hands out each preparation connection's grants in turn); variants drop an index
to show its share. Counts pages, not time: the same on any machine. Not part of the test suite.
"""
import os
import random
import secrets
import sqlite3
import sys
import tempfile

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "../crates/latchkey-server/migrations/sqlite")
ACCESS = '[{"type":"incoming-payment","actions":["create","read","list"],"identifier":"http://x/alice"}]'
FRAME = 4096 + 24
T0 = 1_790_000_000_000


RANDOM_KEYS = False


def token_key(millis):
    """A token's stored key: time first (round 11), or random as before round 11."""
    if RANDOM_KEYS:
        return secrets.token_bytes(32)
    return millis.to_bytes(6, "big") + secrets.token_bytes(26)


def build(path, tokens, drop_index):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    for name in sorted(os.listdir(MIGRATIONS)):
        conn.executescript(open(os.path.join(MIGRATIONS, name)).read())
    if drop_index:
        conn.execute(f"DROP INDEX {drop_index}")
    conn.execute("BEGIN")
    for i in range(tokens):
        grant = f"{T0 + i:016d}g{secrets.token_hex(7)}"
        conn.execute(
            "INSERT INTO grants (id, continue_id, continue_token_hash, client_kind, client_value, "
            "access, state, wait_secs, created_at) VALUES (?, ?, ?, 'wallet_address', "
            "'http://x/alice', ?, 'issued', 5, ?)",
            (grant, f"{T0 + i:016d}c{secrets.token_hex(7)}", secrets.token_bytes(32), ACCESS, T0 + i))
        conn.execute(
            "INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (f"{T0 + i:016d}m{secrets.token_hex(7)}", grant, token_key(T0 + i), T0 + i, T0 + i + 600_000))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return conn


def frames_per_write(tokens, group, op, order, drop_index=None, groups=50):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.db")
        conn = build(path, tokens, drop_index)
        targets = list(conn.execute("SELECT manage_id, grant_id FROM access_tokens ORDER BY manage_id"))
        if order == "random":
            random.Random(7).shuffle(targets)
        now = T0 + tokens + 100_000  # after every stored token: successors are appended
        for g in range(groups):
            conn.execute("BEGIN")
            for old, grant in targets[g * group:(g + 1) * group]:
                now += 1
                successor = f"{now:016d}m{secrets.token_hex(7)}"
                if op == "rotate":
                    conn.execute("UPDATE access_tokens SET revoked_at = ?, rotated_to = ? "
                                 "WHERE manage_id = ?", (now, successor, old))
                    conn.execute("INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, "
                                 "expires_at) VALUES (?, ?, ?, ?, ?)",
                                 (successor, grant, token_key(now), now, now + 600_000))
                else:
                    conn.execute("UPDATE access_tokens SET revoked_at = ? WHERE manage_id = ?", (now, old))
            conn.execute("COMMIT")
        grown = os.path.getsize(path + "-wal") // FRAME
        conn.close()
        return grown / (group * groups)


def main():
    global RANDOM_KEYS
    tokens = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    group = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    print(f"{tokens} stored tokens, {group} writes per commit: WAL frames per write")
    for order in ["issue", "random"]:
        for op, drop in [("revoke", None), ("rotate", None), ("rotate", "access_tokens_by_grant"),
                         ("rotate", "access_tokens_by_expiry")]:
            label = op + (f" without {drop}" if drop else "")
            print(f"  {order:6} order  {label:46} {frames_per_write(tokens, group, op, order, drop):.2f}")
        RANDOM_KEYS = True
        print(f"  {order:6} order  {'rotate, random token keys (before round 11)':46} "
              f"{frames_per_write(tokens, group, 'rotate', order):.2f}")
        RANDOM_KEYS = False


if __name__ == "__main__":
    main()
