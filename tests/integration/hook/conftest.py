"""The hook's tests: what one host's hook, flush and publisher put on the real broker.

Their fixture ``tap`` (a queue bound to the events exchange of the session's vhost) lives in
tests/support/host_side.py: these tests also run on a host's Python 3.9 without conftests.
"""

from tests.support.host_side import hook, tap  # noqa: F401
