"""Benchmark: the ward app's upload-to-verdict time for a one-year log against ``itb check``.

Starts ``itb serve`` (its own process, a fresh data folder, 127.0.0.1, any free port), checks the
log once to warm it, then alternately, several times: uploads the one-year sample log through the
new-check form (multipart POST with the CSRF token, as a browser sends it) and reads the result
page it is sent to (the verdict is on it), and runs the whole ``itb check`` process on the same
log with the same procedure.  Compares the medians measured in this one run, since the machine
is noisy.  Target: ratio well under 1 (the analysis stays loaded in the server).

    python benchmarks/serve.py [--runs 7] [--log sample_logs/normal_year.itblog]

Last line: ``RESULT serve_s=... cli_s=... ratio=...``.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END, WEIGHT = "2026-10-31T10:00:00+00:00", "2026-10-31T11:00:00+00:00", "28"


def _multipart(fields: dict[str, str], file_field: str, name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Ward:
    """``itb serve`` in its own process, and a client with its cookie."""

    def __init__(self, data: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "itb_device", "serve", "--data", str(data), "--port", "0", "--tz", "UTC"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(120):
            self.proc.kill()
            raise SystemExit("itb serve did not start in 120 s")
        m = re.search(r"http://127\.0\.0\.1:\d+/", self.proc.stdout.readline())
        if not m:
            self.proc.kill()
            raise SystemExit("itb serve did not print its address")
        self.url = m.group(0)
        jar = http.cookiejar.CookieJar()
        self.http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with self.http.open(self.url, timeout=60) as r:
            self.token = re.search(r'name="csrf" value="([^"]+)"', r.read().decode()).group(1)

    def check(self, log: Path) -> tuple[float, str]:
        """Upload ``log`` and read the result page: (seconds, verdict)."""
        data = log.read_bytes()
        t0 = time.perf_counter()
        fields = {"csrf": self.token, "procedure": "mri", "start": START, "end": END, "zone": "UTC",
                  "weight_kg": WEIGHT, "action": "file"}
        body, ctype = _multipart(fields, "log", log.name, data)
        req = urllib.request.Request(self.url + "checks", data=body, headers={"Content-Type": ctype})
        with self.http.open(req, timeout=120) as r:  # 303 to the result, followed
            page = r.read().decode()
            where = r.geturl()
        seconds = time.perf_counter() - t0
        m = re.search(r'class="verdict-word" data-verdict="(\w+)"', page)
        if not m or "/checks/" not in where:
            raise SystemExit(f"no verdict on the result page ({where})")
        return seconds, m.group(1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _cli(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    m = re.search(r"VERDICT: (\w+)", p.stdout)
    return seconds, m.group(1) if m else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--log", type=Path, default=ROOT / "sample_logs" / "normal_year.itblog")
    args = ap.parse_args()
    itb = shutil.which("itb", path=str(Path(sys.executable).parent)) or "itb"
    cli = [itb, "check", str(args.log), "--after", "mri", "--end", END, "--start", START,
           "--weight-kg", WEIGHT, "--tz", "UTC"]
    with tempfile.TemporaryDirectory(prefix="itb-ward-bench-") as tmp:
        t0 = time.perf_counter()
        ward = Ward(Path(tmp) / "data")
        start_s = time.perf_counter() - t0
        try:
            _, v_serve = ward.check(args.log)  # warm: the first check of the process
            _, v_cli = _cli(cli)  # and the file cache for the command
            if v_serve != v_cli:
                raise SystemExit(f"the ward app says {v_serve}, itb check says {v_cli}")
            s, c = [], []
            for _ in range(args.runs):
                s.append(ward.check(args.log)[0])
                c.append(_cli(cli)[0])
        finally:
            ward.close()
    sm, cm = statistics.median(s), statistics.median(c)
    print(f"log               {args.log.name} ({args.log.stat().st_size // 1024} kB), verdict {v_serve}")
    print(f"itb serve start   {start_s:.2f} s (once, before the first check)")
    print(f"upload to verdict median {sm:.3f} s  (min {min(s):.3f}, max {max(s):.3f}, {args.runs} runs)")
    print(f"itb check         median {cm:.3f} s  (min {min(c):.3f}, max {max(c):.3f})")
    print(f"ratio             {sm / cm:.2f}  (target well under 1)")
    print(f"RESULT serve_s={sm:.3f} cli_s={cm:.3f} ratio={sm / cm:.2f}")


if __name__ == "__main__":
    main()
