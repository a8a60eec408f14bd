"""The Jinja2 environment every loginwatch mail is rendered in (alerts, bursts, digests).

Packaged templates live in ``consumer/templates/``; a file of the same name in
``[render] templates`` overrides one. The environment is sandboxed and undefined names are
errors; ``*.html.j2`` is autoescaped. Event text reaches a template only as data, so it is
never evaluated as a template.
"""

from __future__ import annotations

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from schemas.errors import ConfigError


def template_environment(override_dir: str | None) -> SandboxedEnvironment:
    """The sandboxed Jinja2 environment of every loginwatch mail (alerts, digests).

    Templates in ``override_dir`` (``[render] templates``) win over the packaged ones;
    ``*.html.j2`` is autoescaped; an undefined name is an error, not an empty string.
    The ``counted`` filter says "1 host" / "2 hosts".
    """
    loaders: list[jinja2.BaseLoader] = []
    if override_dir:
        loaders.append(jinja2.FileSystemLoader(override_dir))
    loaders.append(jinja2.PackageLoader("consumer", "templates"))
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["counted"] = counted
    return env


def counted(count: int, word: str, plural: str | None = None) -> str:
    """``{{ n|counted("host") }}``: "1 host", "2 hosts" (``plural`` for irregular words)."""
    return f"{count} {word if count == 1 else plural or word + 's'}"


def load_templates(env: jinja2.Environment, names: tuple[str, ...]) -> dict[str, jinja2.Template]:
    """Compile ``names`` up front, so a broken override fails at start, not at the first mail.

    Raises:
        ConfigError: a template is missing or does not compile (names the file and line).
    """
    try:
        return {name: env.get_template(name) for name in names}
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}"
        ) from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template: {exc}") from None
