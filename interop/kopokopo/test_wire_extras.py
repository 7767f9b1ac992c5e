"""Raw-HTTP checks for parts of the feature that neither Kopo Kopo SDK nor Authlib
exercise (JSON token body, RFC 6749 2.3.1 url-encoded Basic, error shapes).
The SDK tests are the interop tests proper; these pin down the contract around them.
"""

import base64
from urllib.parse import quote

import requests


def test_token_request_with_json_body(latchkey, client):
    r = requests.post(latchkey.url + "/oauth/token", json={
        "grant_type": "client_credentials",
        "client_id": client["client_id"], "client_secret": client["client_secret"]}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.json()["token_type"] == "Bearer"


def test_token_request_with_urlencoded_basic(latchkey, client):
    # RFC 6749 2.3.1: id and secret are application/x-www-form-urlencoded before base64.
    pair = f"{quote(client['client_id'], safe='')}:{quote(client['client_secret'], safe='')}"
    r = requests.post(latchkey.url + "/oauth/token", data={"grant_type": "client_credentials"}, headers={
        "Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)


def test_response_headers_and_error_shapes(latchkey, client):
    url = latchkey.url + "/oauth/token"
    r = requests.post(url, data={"grant_type": "client_credentials", "client_id": client["client_id"],
                                 "client_secret": client["client_secret"]}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    assert "no-store" in r.headers.get("Cache-Control", ""), r.headers  # RFC 6749 5.1

    r = requests.post(url, data={"grant_type": "password", "client_id": client["client_id"],
                                 "client_secret": client["client_secret"]}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type", (r.status_code, r.text)

    r = requests.post(url, data={"grant_type": "client_credentials"}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", (r.status_code, r.text)
    assert r.headers.get("WWW-Authenticate"), r.headers
