"""``itb serve``: the ward app, the two-hour check in a browser with a record of every check.

Starts a local web server (Flask on waitress) on 127.0.0.1 and prints its address; ``--open``
opens it in the browser.  Its data (SQLite and the logs, by SHA-256) live in a per-user folder
or ``--data``.  Another address than loopback needs an access key (``--access-key-file`` or
$ITB_WARD_ACCESS_KEY): without one it is refused, exit 2.  Ctrl-C stops it (exit 0); every
finished check is already on disk.  docs/ward.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from itb_device.cli.errors import UserError

# the ward app is imported only when it is run: building the parser of every `itb` command
# stays quick and needs nothing of it
DEFAULT_PORT = 8470
DEFAULT_MAX_UPLOAD_MB = 64  # a pump's whole memory is a few MiB; a year of history is ~300 kB
ENV_DATA = "ITB_WARD_DATA"
ENV_ACCESS_KEY = "ITB_WARD_ACCESS_KEY"
MIN_KEY_CHARS = 16

EPILOG = """\
examples:
  itb serve --open                          the ward app on http://127.0.0.1:8470/, in the browser
  itb serve --data /srv/ward --port 0       another data folder, any free port (printed)
  ITB_WARD_ACCESS_KEY=... itb serve --host 0.0.0.0   on the network, with an access key

docs/ward.md: how to run it, where the data lives, the security model."""




def register(p: argparse.ArgumentParser) -> None:
    """Add the serve options."""
    p.add_argument("--data", type=Path, metavar="DIR",
                   help=f"the ward's data folder (default: ${ENV_DATA}, else a per-user folder such as "
                   "~/.local/share/itb-telemetry/ward)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on (default {DEFAULT_PORT}; 0: any free port, printed)")
    p.add_argument("--host", default="127.0.0.1",
                   help=f"address to listen on (default 127.0.0.1; any other needs an access key: "
                   f"--access-key-file or ${ENV_ACCESS_KEY})")
    p.add_argument("--open", action="store_true", help="open the ward app in the web browser")
    p.add_argument("--tz", help="the time zone the form offers first (default: the machine's), e.g. "
                   "Australia/Sydney; each check can change it")
    p.add_argument("--rules", type=Path, help="a hospital's clinical rules file (TOML) for new checks")
    p.add_argument("--access-key-file", type=Path, metavar="FILE",
                   help="a file holding the access key people must type to open the app (or "
                   f"${ENV_ACCESS_KEY}); at least 16 characters")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"the largest log accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB})")
    p.add_argument("--mrn-system", default="urn:itb-telemetry:mrn", metavar="URI",
                   help="the FHIR identifier system of the hospital's MRNs, for the export (docs/fhir.md)")


def default_data_dir() -> Path:
    """``$ITB_WARD_DATA``, else the per-user data folder of this system: ``%LOCALAPPDATA%`` on
    Windows, ``~/Library/Application Support`` on macOS, ``$XDG_DATA_HOME`` (``~/.local/share``)
    elsewhere; ``itb-telemetry/ward`` inside it."""
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "itb-telemetry" / "ward"


def _access_key(args: argparse.Namespace) -> str | None:
    if args.access_key_file is not None:
        try:
            key = args.access_key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--access-key-file {args.access_key_file}: cannot read it ({exc})") from exc
        where = f"--access-key-file {args.access_key_file}"
    else:
        key = os.environ.get(ENV_ACCESS_KEY, "").strip()
        where = f"${ENV_ACCESS_KEY}"
    if not key:
        return None
    if len(key) < MIN_KEY_CHARS or not key.isprintable():
        raise UserError(f"{where}: an access key must be at least {MIN_KEY_CHARS} printable characters")
    return key


def _missing(exc: ImportError) -> str:
    return (f"the ward app cannot be loaded ({exc}): it needs the ward package, Flask and waitress; "
            "reinstall itb-telemetry from the repository root with .venv/bin/pip install -e .")


def run(args: argparse.Namespace) -> int:
    """Serve the ward app until Ctrl-C."""
    from itb_device.cli.options import local_zone

    try:
        from ward.config import WardConfig, is_loopback, zone_name
    except ImportError as exc:
        raise UserError(_missing(exc)) from exc

    key = _access_key(args)
    loopback = is_loopback(args.host)
    if not loopback and key is None:
        raise UserError(f"--host {args.host} is not a loopback address: the ward app holds patient data, "
                        "so another address needs an access key (--access-key-file FILE or "
                        "$ITB_WARD_ACCESS_KEY)")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: a port is 0 to 65535 (0: any free port)")
    if not args.max_upload_mb > 0:
        raise UserError("--max-upload-mb must be positive")
    zone = zone_name(local_zone(args.tz))
    data = (args.data or default_data_dir()).expanduser()
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--data {data}: cannot make the folder ({exc.strerror or exc})") from exc
    if not os.access(data, os.W_OK | os.X_OK):
        raise UserError(f"--data {data}: the folder is not writable")
    try:
        from waitress import create_server

        from ward import create_app
    except ImportError as exc:
        raise UserError(_missing(exc)) from exc
    cap = int(args.max_upload_mb * 1024 * 1024)
    config = WardConfig(data_dir=data, host=args.host, port=args.port, zone=zone, rules_path=args.rules,
                        access_key=key, max_upload_bytes=cap, mrn_system=args.mrn_system)
    app = create_app(config)
    try:
        server: Any = create_server(app, host=args.host, port=args.port, threads=6, ident="itb-ward",
                                    max_request_body_size=max(2 * cap, cap + 16 * 1024 * 1024),
                                    clear_untrusted_proxy_headers=True)
    except OSError as exc:
        if args.port and "in use" in str(exc).lower():
            raise UserError(f"--port {args.port}: the port is in use (is the ward app already running? open "
                            f"http://127.0.0.1:{args.port}/, or give --port 0 for a free one)") from exc
        raise UserError(f"--host {args.host} --port {args.port}: cannot listen "
                        f"({exc.strerror or exc})") from exc
    port = int(server.effective_port)
    config.port = port
    if loopback:
        from ward.security import loopback_hosts

        config.allowed_hosts = loopback_hosts(port, args.host)
    shown = args.host if loopback else socket.gethostname()
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/"
    print(f"itb serve: the ward app is at {url} (data: {data}); Ctrl-C stops it", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)  # stop as Ctrl-C does: every finished check is on disk
    try:
        server.run()  # until Ctrl-C or SIGTERM (waitress then closes the server itself)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("itb serve: stopped", file=sys.stderr)
    return 0
