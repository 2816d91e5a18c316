"""The ward app: the two-hour check in a browser, with a record of every check (issue 17).

``itb serve`` starts it on 127.0.0.1; :func:`ward.app.create_app` builds it for any WSGI
server.  It sits above every other package, like the command line: it uses ``parsers``,
``clinical``, ``itb_device`` (to read a pump) and the analysis, the last only through
``ward.analysis_adapter``.  docs/ward.md: how to run it, where its data lives, its security
model.
"""

from __future__ import annotations

from typing import Any


def create_app(config: Any) -> Any:
    """The Flask application for ``config`` (a :class:`ward.config.WardConfig`)."""
    from .app import create_app as make

    return make(config)


__all__ = ["create_app"]
