"""The ``itb`` command line: the top layer, the only part of ``itb_device`` that may import
``analysis`` (docs/architecture.md).

``main`` (:mod:`.main`) parses the arguments and runs one sub-command module (``check``,
``decode``, ...; each has ``register(parser)`` and ``run(args)``, imported lazily).  Errors and
exit statuses are in :mod:`.errors`; the argument types every command shares (times, zones,
output paths) in :mod:`.options`.
"""

from itb_device.cli.errors import Interrupted, UserError
from itb_device.cli.main import build_parser, main

__all__ = ["Interrupted", "UserError", "build_parser", "main"]
