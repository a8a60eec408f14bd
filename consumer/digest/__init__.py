"""The digest scheduler (``loginwatch digest``): store events, send one summary per window.

``windows`` (pure window math) → ``intake`` (events → stored rows) → ``store`` (tables, lease,
window states) → ``aggregate`` (SQL per window and recipient → ``summary``) → ``view`` /
``render`` (the mail) → ``sender`` (exactly once per window, as the holder of the ``lease``)
→ ``scheduler`` (a handler of consumer/runtime.py; ``commands/digest.py`` wires the parts).
"""
