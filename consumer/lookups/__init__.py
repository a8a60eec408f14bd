"""What the central side can look up about a source address: reverse DNS and GeoIP.

Owns: forward-confirmed reverse DNS in one time bound per address (``rdns``) and the
MaxMind database reader (``geoip``). Both treat every answer as hostile text. The alert
pipeline asks them through the enrich stage; the digest asks them for its listed sources.

Imports from consumer: core (never alerts, broker, channels, commands, detect, digest,
questions, silences, stages, store, web).
"""
