-- Row changes no longer notify `latchkey_invalidate`.
--
-- 0001 and 0002 made every UPDATE or DELETE of a token, grant, OAuth token or OAuth client row
-- send a notification, for caches of those rows. No such cache exists: token liveness is read
-- from the database on every introspection, so that a revoke is seen everywhere as soon as it
-- is acknowledged. The only cache, the client-key cache, hears `keys:` events that nodes
-- publish themselves. Meanwhile the triggers cost PostgreSQL time on every row written (one
-- statement revoking 64 tokens: 7.8 ms with them, 2.3 ms without), and every node's feed had
-- to receive, parse and drop thousands of events a second under write load.
--
-- A future cache of these rows should bring back only the notifications it reads.
DROP TRIGGER access_tokens_invalidate ON access_tokens;
DROP TRIGGER grants_invalidate ON grants;
DROP TRIGGER oauth_tokens_invalidate ON oauth_tokens;
DROP TRIGGER oauth_clients_invalidate ON oauth_clients;
DROP FUNCTION latchkey_notify_token();
DROP FUNCTION latchkey_notify_grant();
DROP FUNCTION latchkey_notify_oauth_token();
DROP FUNCTION latchkey_notify_oauth_client();
