"""pytest harness: runs the real `latchkey` binary for the Kopo Kopo interop tests.

One `latchkey serve --dev` process is started per pytest session on an
ephemeral port with a fresh SQLite database under ./artifacts/python/.
OAuth clients are created with `latchkey oauth-client create` against the
same database file while the server runs (SQLite WAL).

Environment:
  LATCHKEY_BIN              path to the binary (default ../../target/debug/latchkey
                            relative to this folder)
  LATCHKEY_STARTUP_TIMEOUT  seconds to wait for READY=1 (default 30)
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import shutil
import subprocess
import threading
import time
import uuid

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts" / "python"

# Clients must talk to 127.0.0.1 directly, never through a proxy from the
# environment (requests honours HTTP(S)_PROXY / NO_PROXY).
for _var in ("NO_PROXY", "no_proxy"):
    _cur = os.environ.get(_var, "")
    os.environ[_var] = ",".join(p for p in (_cur, "127.0.0.1", "localhost") if p)


def latchkey_bin() -> pathlib.Path:
    raw = os.environ.get("LATCHKEY_BIN")
    path = pathlib.Path(raw) if raw else HERE / ".." / ".." / "target" / "debug" / "latchkey"
    return path.resolve()


def _child_env() -> dict:
    return {**os.environ, "NO_COLOR": "1"}  # plain-text logs in artifacts/


class HarnessError(RuntimeError):
    """The harness could not drive the binary (missing, crashed, broke the CLI contract)."""


def _tail(path: pathlib.Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "<no log>"
    return "\n".join(lines[-n:])


class LatchkeyServer:
    def __init__(self, binary: pathlib.Path, workdir: pathlib.Path):
        self.binary = binary
        self.workdir = workdir
        self.db_path = workdir / "latchkey.db"
        self.database_url = f"sqlite://{self.db_path}"  # sqlite:///abs/path/latchkey.db
        self.stderr_path = workdir / "serve.stderr.log"
        self.stdout_path = workdir / "serve.stdout.log"
        self.info: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float) -> None:
        cmd = [
            str(self.binary), "serve", "--dev",
            "--listen", "127.0.0.1:0",
            "--private-listen", "127.0.0.1:0",
            "--database", self.database_url,
        ]
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, env=_child_env(),
            stdout=subprocess.PIPE, stderr=self._stderr,
        )
        lines: "queue.Queue[str | None]" = queue.Queue()

        def pump() -> None:
            assert self.proc and self.proc.stdout
            with open(self.stdout_path, "w") as log:
                for raw in self.proc.stdout:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    log.write(line + "\n")
                    log.flush()
                    lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise HarnessError(
                    f"latchkey serve did not print READY=1 within {timeout}s: {' '.join(cmd)}\n"
                    f"stdout so far: {self.info}\n--- stderr tail ---\n{_tail(self.stderr_path)}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait()
                raise HarnessError(
                    f"latchkey serve exited (code {code}) before READY=1: {' '.join(cmd)}\n"
                    f"stdout: {self.info}\n--- stderr tail ---\n{_tail(self.stderr_path)}")
            key, sep, value = line.partition("=")
            if sep:
                self.info[key.strip()] = value.strip()
            if self.info.get("READY") == "1":
                break
        if "PUBLIC_URL" not in self.info:
            self.stop()
            raise HarnessError(f"latchkey serve printed READY=1 without PUBLIC_URL: {self.info}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_stderr", None):
            self._stderr.close()

    # -- helpers -----------------------------------------------------------
    @property
    def url(self) -> str:
        """Origin serving /oauth/* (no trailing slash)."""
        return self.info["PUBLIC_URL"].rstrip("/")

    def create_client(self, name: str | None = None, scopes: tuple[str, ...] = ()) -> dict:
        name = name or f"k2-interop-{uuid.uuid4().hex[:8]}"
        cmd = [str(self.binary), "oauth-client", "create", "--name", name]
        for scope in scopes:
            cmd += ["--scope", scope]
        cmd += ["--database", self.database_url]
        res = subprocess.run(cmd, cwd=self.workdir, env=_child_env(), capture_output=True, timeout=60)
        stdout = res.stdout.decode("utf-8", "replace")
        stderr = res.stderr.decode("utf-8", "replace")
        if res.returncode != 0:
            raise HarnessError(f"{' '.join(cmd)} exited {res.returncode}\nstdout: {stdout}\nstderr: {stderr}")
        try:
            creds = json.loads(stdout)
        except ValueError as exc:
            raise HarnessError(
                f"`oauth-client create` stdout is not a JSON document ({exc}):\n{stdout!r}\nstderr: {stderr}")
        if not (isinstance(creds, dict) and isinstance(creds.get("client_id"), str)
                and isinstance(creds.get("client_secret"), str)
                and creds["client_id"] and creds["client_secret"]):
            raise HarnessError(f"`oauth-client create` JSON lacks client_id/client_secret strings: {creds!r}")
        return {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
                "name": name, "scopes": list(scopes)}


def _or_fail(fn, *args, **kwargs):
    """Run a harness step; turn HarnessError into a clean pytest failure (no traceback)."""
    try:
        return fn(*args, **kwargs), None
    except HarnessError as exc:
        return None, str(exc)


@pytest.fixture(scope="session")
def latchkey():
    binary = latchkey_bin()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"latchkey binary not found or not executable at {binary} "
                    f"(build it first or set LATCHKEY_BIN)", pytrace=False)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    server = LatchkeyServer(binary, ARTIFACTS)
    _, err = _or_fail(server.start, float(os.environ.get("LATCHKEY_STARTUP_TIMEOUT", "30")))
    if err:
        pytest.fail(err, pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def make_client(latchkey):
    """make_client(*scopes) -> {"client_id", "client_secret", ...} via `latchkey oauth-client create`."""
    def _make(*scopes: str) -> dict:
        creds, err = _or_fail(latchkey.create_client, scopes=scopes)
        if err:
            pytest.fail(err, pytrace=False)
        return creds
    return _make


@pytest.fixture
def client(make_client):
    """A fresh OAuth client (no scopes) for one test."""
    return make_client()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Point at the server log on failure so server bugs are easy to tell apart.
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when == "call":
        log = ARTIFACTS / "serve.stderr.log"
        report.sections.append(("latchkey serve stderr (tail)", _tail(log, 30)))
