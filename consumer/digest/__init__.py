"""The digest scheduler (``loginwatch digest``): store events, send one summary per window.

``windows`` (pure window math) → ``intake`` (event → stored row) → ``store`` (tables, lease,
window states) → ``aggregate`` (SQL per window and recipient → ``summary``) → ``view`` /
``render`` (the mail) → ``digests`` (exactly once per window) → ``scheduler`` (the runtime).
"""
