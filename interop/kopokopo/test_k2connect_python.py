"""Interop: PyPI k2-connect 2.0.0 (Kopo Kopo's Python SDK) against latchkey.

The SDK is driven exactly as Kopo Kopo documents it:
    k2connect.initialize(CLIENT_ID, CLIENT_SECRET, BASE_URL)   # BASE_URL must end in "/"
    k2connect.Tokens.request_access_token() / request_token_info() /
    introspect_access_token() / revoke_access_token()
Each call returns the parsed JSON body on 200..300 and raises
k2connect.exceptions.K2Error({'error_code': status, 'error_content': body}) otherwise.
"""

import json
import time

import k2connect
import pytest
from k2connect.exceptions import K2Error


def tokens_for(latchkey, creds, secret=None):
    # validate_base_url() insists on a path of exactly "/".
    k2connect.initialize(creds["client_id"], secret or creds["client_secret"], latchkey.url + "/")
    return k2connect.Tokens


def k2_error(excinfo):
    """(status, parsed JSON body or raw text) from a K2Error."""
    detail = excinfo.value.args[0]
    assert isinstance(detail, dict), f"unexpected K2Error payload: {detail!r}"
    body = detail["error_content"]
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return detail["error_code"], body


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def test_lifecycle_token_info_introspect_revoke(latchkey, client):
    tokens = tokens_for(latchkey, client)

    # 1. POST /oauth/token (form: client_id, client_secret, grant_type)
    before = int(time.time())
    resp = tokens.request_access_token()
    assert isinstance(resp, dict), resp
    token = tokens.get_access_token(resp)
    assert isinstance(token, str) and token, resp
    assert resp["token_type"] == "Bearer", resp
    assert is_int(resp["expires_in"]) and resp["expires_in"] > 60, resp
    assert is_int(resp["created_at"]) and before - 5 <= resp["created_at"] <= time.time() + 5, resp
    assert isinstance(resp["scope"], str), resp
    granted = sorted(resp["scope"].split())

    # 2. GET /oauth/token/info with Authorization: Bearer <token> (Doorkeeper shape)
    info = tokens.request_token_info(token)
    assert isinstance(info, dict), info
    assert info["application"] == {"uid": client["client_id"]}, info
    assert "resource_owner_id" in info and info["resource_owner_id"] is None, info
    assert isinstance(info["scope"], list), f"token info scope must be a JSON array: {info}"
    assert sorted(info["scope"]) == granted, (info, resp)
    assert is_int(info["expires_in"]) and 0 < info["expires_in"] <= resp["expires_in"], info
    assert info["created_at"] == resp["created_at"], (info, resp)

    # 3. POST /oauth/introspect (JSON body: client_id, client_secret, token)
    intro = tokens.introspect_access_token(token)
    assert intro["active"] is True, intro
    assert intro["client_id"] == client["client_id"], intro
    assert intro["token_type"] == "Bearer", intro
    assert is_int(intro["exp"]) and is_int(intro["iat"]), f"exp/iat must be numeric: {intro}"
    assert abs(intro["iat"] - resp["created_at"]) <= 1, (intro, resp)
    assert abs((intro["exp"] - intro["iat"]) - resp["expires_in"]) <= 1, (intro, resp)
    assert sorted(intro["scope"].split()) == granted, (intro, resp)

    # 4. POST /oauth/revoke (form: client_id, client_secret, token) -> 200 {}
    assert tokens.revoke_access_token(token) == {}

    # 5. the token is now dead
    assert tokens.introspect_access_token(token)["active"] is False
    with pytest.raises(K2Error) as excinfo:
        tokens.request_token_info(token)
    status, body = k2_error(excinfo)
    assert status == 401, (status, body)

    # revoking again is still a 200 {} (RFC 7009 2.2)
    assert tokens.revoke_access_token(token) == {}


def test_wrong_secret_is_refused(latchkey, client):
    tokens = tokens_for(latchkey, client, secret=client["client_secret"] + "x")
    with pytest.raises(K2Error) as excinfo:
        tokens.request_access_token()
    status, body = k2_error(excinfo)
    assert status == 401, (status, body)
    assert isinstance(body, dict) and body.get("error") == "invalid_client", body
    assert isinstance(body.get("error_description"), str), body


def test_wrong_secret_cannot_introspect_or_revoke(latchkey, client):
    token = tokens_for(latchkey, client).request_access_token()["access_token"]
    bad = tokens_for(latchkey, client, secret="not-the-secret")
    with pytest.raises(K2Error) as excinfo:
        bad.introspect_access_token(token)
    status, body = k2_error(excinfo)
    assert status == 401 and body.get("error") == "invalid_client", (status, body)
    with pytest.raises(K2Error) as excinfo:
        bad.revoke_access_token(token)
    status, body = k2_error(excinfo)
    assert status == 401 and body.get("error") == "invalid_client", (status, body)
    # and the token survived both attempts
    assert tokens_for(latchkey, client).introspect_access_token(token)["active"] is True


def test_unknown_token(latchkey, client):
    tokens = tokens_for(latchkey, client)
    assert tokens.revoke_access_token("no-such-token") == {}
    assert tokens.introspect_access_token("no-such-token")["active"] is False
    with pytest.raises(K2Error) as excinfo:
        tokens.request_token_info("no-such-token")
    assert k2_error(excinfo)[0] == 401


def test_cannot_revoke_another_clients_token(latchkey, client, make_client):
    owner = tokens_for(latchkey, client)
    token = owner.request_access_token()["access_token"]

    other = make_client()
    # RFC 7009: the server answers 200 but must not revoke a token it did not issue to this client
    assert tokens_for(latchkey, other).revoke_access_token(token) == {}

    owner = tokens_for(latchkey, client)
    assert owner.introspect_access_token(token)["active"] is True
    assert owner.request_token_info(token)["application"] == {"uid": client["client_id"]}
