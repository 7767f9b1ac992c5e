-- Access tokens issued from this release on start with their issue time, and their stored key
-- (`hash`) is that time prefix followed by 26 bytes of the value's SHA-256 (`TokenHash::of` in
-- token_format.rs); tokens issued earlier keep their plain SHA-256 and are still found.
--
-- Nothing in the tables changes. This migration exists so that an older Latchkey, which would
-- look such tokens up by their plain SHA-256 and not find them (a live token answered as
-- inactive), refuses the database instead ("schema is newer than this Latchkey knows").
COMMENT ON COLUMN access_tokens.hash IS
    'Lookup key: for a 51-character value, its 6-byte time prefix then SHA-256(value)[0..26]; otherwise SHA-256(value)';
COMMENT ON COLUMN oauth_tokens.hash IS
    'Lookup key: for a 51-character value, its 6-byte time prefix then SHA-256(value)[0..26]; otherwise SHA-256(value)';
