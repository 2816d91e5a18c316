"""``itb serve`` as a command (issue 17): loopback by default, another address refused without an
access key (one line, exit 2), and with a key every page asks for it first.  No browser: the
server runs as its own process and is spoken to over HTTP on 127.0.0.1."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from conftest import ROOT

KEY = "correct horse battery staple 42"


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    """``itb serve ARGS`` with no access key in the environment."""
    return subprocess.run([sys.executable, "-m", "itb_device", "serve", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "ITB_WARD_ACCESS_KEY": ""})


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "ward.example"])
def test_another_address_without_an_access_key_is_refused(tmp_path, host):
    p = serve("--host", host, "--data", str(tmp_path / "data"))
    assert p.returncode == 2 and not p.stdout
    assert p.stderr.count("\n") == 1
    assert p.stderr.startswith(f"itb serve: error: --host {host} is not a loopback address: ")
    assert "access key" in p.stderr
    assert not (tmp_path / "data").exists()  # refused before anything is made


def test_a_short_access_key_is_refused(tmp_path):
    key = tmp_path / "key"
    key.write_text("short\n")
    p = serve("--host", "0.0.0.0", "--access-key-file", str(key), "--data", str(tmp_path / "data"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "at least 16 printable characters" in p.stderr


def test_bad_options_are_one_line(tmp_path):
    for args, words in ((["--tz", "Mars/Olympus"], "not a known time zone"),
                        (["--max-upload-mb", "0"], "--max-upload-mb must be positive"),
                        (["--port", "70000"], "a port is 0 to 65535")):
        p = serve(*args, "--data", str(tmp_path / "d"))
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr, (args, p.stderr)


def test_help_names_the_defaults_and_the_docs():
    p = serve("--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    assert "default 127.0.0.1" in text and "8470" in text and "docs/ward.md" in text


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("keyed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "itb_device", "serve", "--data", str(data), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "ITB_WARD_ACCESS_KEY": KEY},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert m, line
        yield m.group(0)
    finally:
        proc.terminate()
        proc.wait(10)


def _client() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _post(opener: urllib.request.OpenerDirector, url: str, fields: dict[str, str]) -> tuple[int, str, str]:
    body = urllib.parse.urlencode(fields).encode()
    try:
        with opener.open(urllib.request.Request(url, data=body, method="POST"), timeout=30) as r:
            return r.status, r.geturl(), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, url, exc.read().decode()


def test_with_an_access_key_every_page_asks_for_it(keyed_server):
    opener = _client()
    with opener.open(keyed_server + "checks", timeout=30) as r:  # redirected to the sign-in
        page = r.read().decode()
        assert "/login" in r.geturl() and "Access key" in page
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    status, _, text = _post(opener, keyed_server + "login", {"csrf": token, "key": "wrong key, long enough!",
                                                             "next": "/checks"})
    assert status == 401 and "not the access key" in text
    fields = {"csrf": token, "key": KEY, "next": "/checks"}
    status, where, text = _post(opener, keyed_server + "login", fields)
    assert status == 200 and where.endswith("/checks") and "Ward list" in text
    # a stranger's client gets nothing but the sign-in
    with _client().open(keyed_server + "checks/1", timeout=30) as r:
        assert "/login" in r.geturl()
    with _client().open(keyed_server + "health", timeout=30) as r:
        assert r.status == 200
