"""Interop: Authlib's generic RFC 6749 / 7009 / 7662 client (requests OAuth2Session) against latchkey.

Authlib defaults: client_secret_basic (Authorization: Basic base64("id:secret"),
NOT form-urlencoded first), token request Content-Type
"application/x-www-form-urlencoded;charset=UTF-8", Accept: application/json.
revoke_token()/introspect_token() return the raw requests.Response.
"""

import time

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError


def endpoints(latchkey):
    base = latchkey.url
    return (base + "/oauth/token", base + "/oauth/revoke",
            base + "/oauth/introspect", base + "/oauth/token/info")


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_lifecycle(latchkey, client, auth_method):
    token_url, revoke_url, introspect_url, info_url = endpoints(latchkey)
    session = OAuth2Session(client["client_id"], client["client_secret"],
                            token_endpoint_auth_method=auth_method,
                            revocation_endpoint_auth_method=auth_method)

    token = session.fetch_token(token_url, grant_type="client_credentials")
    access = token["access_token"]
    assert token["token_type"] == "Bearer", dict(token)
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 60, dict(token)
    assert isinstance(token["created_at"], int) and abs(token["created_at"] - time.time()) < 60, dict(token)
    assert "refresh_token" not in token, "client_credentials must not issue a refresh token (RFC 6749 4.4.3)"

    # token info through the session's automatic Bearer header
    info = session.get(info_url)
    assert info.status_code == 200, (info.status_code, info.text)
    assert info.json()["application"] == {"uid": client["client_id"]}, info.text

    r = session.introspect_token(introspect_url, token=access, token_type_hint="access_token")
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert body["active"] is True and body["client_id"] == client["client_id"], body
    assert body["token_type"] == "Bearer", body
    assert isinstance(body["exp"], int) and isinstance(body["iat"], int), body
    assert body["exp"] > time.time() > body["iat"] - 5, body

    r = session.revoke_token(revoke_url, token=access, token_type_hint="access_token")
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.json() == {}, r.text

    r = session.introspect_token(introspect_url, token=access)
    assert r.status_code == 200 and r.json()["active"] is False, (r.status_code, r.text)

    info = session.get(info_url)
    assert info.status_code == 401, (info.status_code, info.text)
    assert info.json().get("error") == "invalid_token", info.text  # RFC 6750 3.1


def test_wrong_secret_is_refused(latchkey, client):
    token_url = endpoints(latchkey)[0]
    session = OAuth2Session(client["client_id"], client["client_secret"] + "x")
    with pytest.raises(OAuthError) as excinfo:
        session.fetch_token(token_url, grant_type="client_credentials")
    assert excinfo.value.error == "invalid_client"

    # the raw exchange: 401 + WWW-Authenticate (RFC 6749 5.2, client used HTTP Basic)
    r = requests.post(token_url, data={"grant_type": "client_credentials"},
                      auth=(client["client_id"], "wrong"), timeout=10)
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.headers.get("WWW-Authenticate", "").lower().startswith("basic"), r.headers
    assert r.json()["error"] == "invalid_client" and isinstance(r.json().get("error_description"), str), r.text


def test_requested_scope(latchkey, make_client):
    creds = make_client("read", "write")
    token_url, _, introspect_url, info_url = endpoints(latchkey)
    session = OAuth2Session(creds["client_id"], creds["client_secret"], scope="read")
    token = session.fetch_token(token_url, grant_type="client_credentials")
    assert token["scope"] == "read", dict(token)
    assert session.introspect_token(introspect_url, token=token["access_token"]).json()["scope"] == "read"
    assert session.get(info_url).json()["scope"] == ["read"]

    session = OAuth2Session(creds["client_id"], creds["client_secret"], scope="admin")
    with pytest.raises(OAuthError) as excinfo:
        session.fetch_token(token_url, grant_type="client_credentials")
    assert excinfo.value.error == "invalid_scope"
