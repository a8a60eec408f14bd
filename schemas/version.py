"""loginwatch's version: the one place it is set, for both sides and every host's events.

Both distributions read it when they are built (pyproject.toml, deploy/host/pyproject.toml),
and every event a hook builds carries it as ``hook_version``, so the central side knows which
release each host runs (``loginwatch status``). `make version VERSION=X.Y.Z` sets it. No
imports: the hook's publisher imports this.
"""

VERSION = "0.2.0"
