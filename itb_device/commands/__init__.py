"""Sub-commands of ``itb``; each module has ``register(parser)`` and ``run(args)``."""
