"""Where both sides look for their config, in one place.

No imports at all: the host hook's PAM foreground imports this, and each module it
loads costs the login time (``typing`` alone is ~2 ms).
"""

DEFAULT_CONFIG = "/etc/loginwatch/loginwatch.toml"
CONFIG_ENV = "LOGINWATCH_CONFIG"  # the variable that names another config file
