"""The digest's aggregation SQL, one statement per section (see aggregate.py).

``{scope}`` is the window-and-audience condition on ``digest_event e`` (its parameters come
first); a trailing ``COUNT(*) OVER ()`` is the number of rows before ``LIMIT``.
Shared SQL: ``?`` placeholders only, no literal question mark or percent sign.
"""

from __future__ import annotations

from typing import Final

# Per host, heat-map column and kind: totals, per-host rows, heat cells, root, dropped.
# SUM(dropped) fits: each stored value is at most 2^31 - 1 (DigestStore.add_events).
HEAT: Final = """
SELECT e.host, (e.at - ?) / ?, e.kind, COUNT(*),
       SUM(CASE WHEN e.kind = 'login' AND e.username = 'root' THEN 1 ELSE 0 END),
       SUM(e.dropped)
FROM digest_event e WHERE {scope}
GROUP BY 1, 2, 3
"""

USERS: Final = """
SELECT e.username, COUNT(*),
       SUM(CASE WHEN e.kind = 'login' THEN 1 ELSE 0 END),
       SUM(CASE WHEN e.kind = 'failure' THEN 1 ELSE 0 END),
       COUNT(DISTINCT e.host), COUNT(*) OVER ()
FROM digest_event e WHERE {scope}
GROUP BY e.username ORDER BY 2 DESC, 1 LIMIT ?
"""

# Parameters after the scope: the kind ('login' or 'failure'), the limit.
SOURCES: Final = """
SELECT e.client_ip, COUNT(*), COUNT(DISTINCT e.username), COUNT(DISTINCT e.host),
       COUNT(*) OVER ()
FROM digest_event e WHERE {scope} AND e.kind = ? AND e.client_ip <> ''
GROUP BY e.client_ip ORDER BY 2 DESC, 1 LIMIT ?
"""

# Successful logins matching ``{extra}`` (root; outside working hours), oldest first, with
# what the user answered to "was this you?" about each ('' when not asked or no answer).
LOGINS: Final = """
SELECT e.at, e.host, e.username, e.client_ip, COALESCE(q.verdict, ''), COUNT(*) OVER ()
FROM digest_event e LEFT JOIN question q ON q.id = e.event_id
WHERE {scope} AND e.kind = 'login' {extra}
ORDER BY e.at, e.event_id LIMIT ?
"""

# Logins that were new on their host: they created their user's first-seen address row for
# that host while too few other hosts vouched for the source (Store.observe's ``novel``; the
# worker's table, which the scheduler records as well, so the digest works without a worker).
FIRST_SEEN: Final = """
SELECT e.at, e.host, e.username, e.client_ip, COALESCE(q.verdict, ''), COUNT(*) OVER ()
FROM digest_event e JOIN first_seen_host f
  ON f.username = e.username AND f.scope = 'address' AND f.value = e.client_ip
 AND f.event_id = e.event_id AND f.novel = 1
LEFT JOIN question q ON q.id = e.event_id
WHERE {scope} AND e.kind = 'login'
ORDER BY e.at, e.event_id LIMIT ?
"""

# A failure completes a burst when the failure {lag} before it, from the same source, is at
# most ? seconds older: N failures within M minutes.
BURSTS: Final = """
SELECT client_ip, COUNT(*), MIN(at), COUNT(*) OVER () FROM (
    SELECT e.client_ip, e.at,
           LAG(e.at, {lag}) OVER (PARTITION BY e.client_ip ORDER BY e.at) AS prev
    FROM digest_event e WHERE {scope} AND e.kind = 'failure' AND e.client_ip <> ''
) t
WHERE prev IS NOT NULL AND at - prev <= ?
GROUP BY client_ip ORDER BY 2 DESC, 1 LIMIT ?
"""

# What flood control and silences kept out of this recipient's inbox (decision log).
KEPT_COUNTS: Final = """
SELECT d.action, COUNT(*)
FROM decision_log d JOIN digest_event e ON e.event_id = d.event_id
WHERE d.recipient = ? AND e.at >= ? AND e.at < ?
GROUP BY d.action
"""

KEPT: Final = """
SELECT d.action, e.at, e.host, e.username, e.client_ip
FROM decision_log d JOIN digest_event e ON e.event_id = d.event_id
WHERE d.recipient = ? AND e.at >= ? AND e.at < ?
ORDER BY e.at, e.event_id LIMIT ?
"""

# Hosts whose events arrived more than ? seconds away from the time they gave (both
# parameters the same number); the most behind and ahead, and how many events were off.
CLOCKS: Final = """
SELECT e.host, MIN(e.host_at - e.arrived_at), MAX(e.host_at - e.arrived_at), COUNT(*),
       COUNT(*) OVER ()
FROM digest_event e WHERE {scope}
  AND (e.host_at - e.arrived_at > ? OR e.arrived_at - e.host_at > ?)
GROUP BY e.host ORDER BY 4 DESC, 1 LIMIT ?
"""

# Store quotas (consumer/store/quota.py), store-wide, over the UTC days ? to ? the window
# touches. Hosts refused rows past a cap: events counted not stored, first-seen rows not
# recorded; the first ? by rows refused.
OVER_CAP: Final = """
SELECT host, SUM(CASE WHEN what = 'events' THEN over ELSE 0 END),
       SUM(CASE WHEN what = 'first_seen' THEN over ELSE 0 END), COUNT(*) OVER ()
FROM store_quota WHERE day >= ? AND day <= ? AND over > 0
GROUP BY host ORDER BY SUM(over) DESC, host LIMIT ?
"""

# The host that added the most rows, its rows, all hosts' rows, and how many hosts added any.
GROWTH: Final = """
SELECT host, SUM(stored), SUM(SUM(stored)) OVER (), COUNT(*) OVER ()
FROM store_quota WHERE day >= ? AND day <= ?
GROUP BY host ORDER BY 2 DESC, 1 LIMIT 1
"""

# Failure sources of the window that no successful login ever came from (first_seen's
# fleet-wide rows, any user): the digest counts them, the alerts no longer say NEW SOURCE.
NEW_FAILURE_SOURCES: Final = """
SELECT COUNT(DISTINCT e.client_ip) FROM digest_event e
WHERE {scope} AND e.kind = 'failure' AND e.client_ip <> ''
  AND NOT EXISTS (SELECT 1 FROM first_seen f WHERE f.scope = 'address' AND f.value = e.client_ip)
"""

# Sessions that ended in the window (logouts from wtmp/wtmpdb), the longest first.
SESSIONS: Final = """
SELECT e.at, e.host, e.username, e.session_seconds, COUNT(*) OVER ()
FROM digest_event e WHERE {scope} AND e.session_seconds IS NOT NULL
ORDER BY e.session_seconds DESC, e.at LIMIT ?
"""
