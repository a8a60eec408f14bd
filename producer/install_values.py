"""What ``deploy/install-host.sh`` needs to know of a host config, read by the project's own
parser (defaults included), so the shell script never parses TOML or evals anything.

    python -I -m producer.install_values FILE

prints the ``[spool] dir`` and the ``[broker] password_file`` ("" for none), one per line,
or one line ``install-host: …`` on stderr and exits 1 when the config is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from schemas.config import Config, load_config
from schemas.errors import LoginwatchError


def values(config: Config) -> tuple[tuple[str, str], ...]:
    """(key, value) of each path the installer acts on."""
    return (
        ("[spool] dir", config.spool.dir),
        ("[broker] password_file", config.broker.password_file or ""),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python -I -m producer.install_values FILE", file=sys.stderr)
        return 2
    try:
        config = load_config(args[0])
    except LoginwatchError as exc:
        print(f"install-host: {exc}", file=sys.stderr)
        return 1
    for key, value in values(config):
        # One value per line, read by a shell: a line break or escape would split or forge one.
        if not value.isprintable():
            print(f"install-host: {args[0]}: {key} {value!r}: not a plain absolute path",
                  file=sys.stderr)  # fmt: skip
            return 1
        print(value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
