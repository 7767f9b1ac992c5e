-- Access tokens issued from this release on start with their issue time, and their stored key
-- (`hash`) is that time prefix followed by 26 bytes of the value's SHA-256 (`TokenHash::of` in
-- token_format.rs); tokens issued earlier keep their plain SHA-256 and are still found.
--
-- Nothing in the tables changes. This migration exists so that an older Latchkey, which would
-- look such tokens up by their plain SHA-256 and not find them (a live token answered as
-- inactive), refuses the database instead ("schema is newer than this Latchkey knows").
SELECT 1;
