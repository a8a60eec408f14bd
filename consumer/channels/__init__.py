"""Where a notice leaves loginwatch: mail, and the receivers (webhook, chat, push).

Owns: the channel protocol and sending a notice once (``base``: check the sent log, deliver,
record), every target's channel built from the config (``outlets``), the SMTP sender
(``mail``) with its envelopes (``mail_headers``) and templates (``mail_templates``), one
HTTP client per receiver with its failures classified (``http``), the literal constructs
that keep hostile text inert (``text``), and one module per receiver kind, each formatting
the channel-neutral notice in code: ``webhook`` (Standard Webhooks, with its JSON Schema),
``slack``, ``mattermost``, ``teams``, ``telegram``, ``ntfy``, ``discord``,
``apprise_channel``.

Imports from consumer: core (never alerts, broker, commands, detect, digest, lookups,
questions, silences, stages, store, web).

Other folders import from channels: base, outlets, mail_headers, mail_templates (never
apprise_channel, discord, http, mail, mattermost, ntfy, slack, teams, telegram, text,
webhook). The pipeline and the digest hold a ``base.Channel`` that ``outlets`` built, so no
channel is wired in anywhere else; mail's templates render outside (operators restyle them).
"""
