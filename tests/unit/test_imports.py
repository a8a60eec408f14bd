"""The import rules of ``make lint`` (tests/support/imports.py), on small trees of our own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.imports import folder_rules, host_side, main, picture, problems

REPO = Path(__file__).resolve().parents[2]


def tree(root: Path, files: dict[str, str]) -> Path:
    """``files`` (path -> source) under ``root``, every folder a package."""
    for name, source in files.items():
        path = root / name
        for folder in path.relative_to(root).parents:
            if folder != Path("."):
                (root / folder).mkdir(parents=True, exist_ok=True)
                (root / folder / "__init__.py").touch()
        path.write_text(source)
    return root


def test_the_real_tree_keeps_the_rules() -> None:
    assert problems(REPO) == []


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    tree(tmp_path, {
        "schemas/event.py": "import json\n",
        "producer/hook.py": "from schemas import event\nfrom producer import spool\n",
        "producer/spool.py": "from schemas.event import X\n",
        "consumer/worker.py": "from . import pipeline\n",
        "consumer/pipeline.py": "from schemas import event\n",
    })  # fmt: skip
    assert problems(tmp_path) == []
    assert main([str(tmp_path)]) == 0


def test_a_circle_is_named_module_by_module(tmp_path: Path) -> None:
    tree(tmp_path, {
        "consumer/worker.py": "from consumer import deadletters\n",
        "consumer/deadletters.py": "from consumer.retries import park\n",
        "consumer/retries.py": "import consumer.worker\n",
        "consumer/other.py": "from consumer import worker\n",
    })  # fmt: skip
    assert problems(tmp_path) == [
        "import circle: consumer.deadletters -> consumer.retries -> consumer.worker"
        " -> consumer.deadletters"
    ]
    assert main([str(tmp_path)]) == 1


def test_an_import_inside_a_function_closes_a_circle_too(tmp_path: Path) -> None:
    tree(tmp_path, {
        "producer/hook.py": "from producer.cli import run\n",
        "producer/cli.py": "def run() -> None:\n    from producer import hook\n",
    })  # fmt: skip
    assert problems(tmp_path) == ["import circle: producer.cli -> producer.hook -> producer.cli"]


def test_a_relative_import_and_a_package_init_count(tmp_path: Path) -> None:
    tree(tmp_path, {
        "consumer/store/__init__.py": '"""Imports from consumer: nothing (never cli)."""\n'
                                      "from .store import Store\n",
        "consumer/store/store.py": "from . import migrations\n",
        "consumer/store/migrations.py": "from consumer.store import Store\n",
    })  # fmt: skip
    assert problems(tmp_path) == [
        "import circle: consumer.store -> consumer.store.store -> consumer.store.migrations"
        " -> consumer.store"
    ]


def test_a_type_checking_import_makes_no_circle(tmp_path: Path) -> None:
    tree(tmp_path, {
        "consumer/a.py": "from consumer import b\n",
        "consumer/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from consumer import a\n",
    })  # fmt: skip
    assert problems(tmp_path) == []


def test_producer_and_consumer_never_import_each_other(tmp_path: Path) -> None:
    tree(tmp_path, {
        "producer/hook.py": "def later() -> None:\n    import consumer.display\n",
        "consumer/worker.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from producer.spool import Spool\n",
        "consumer/display.py": "",
        "producer/spool.py": "",
    })  # fmt: skip
    assert problems(tmp_path) == [
        "producer/hook.py:2: producer.hook imports consumer.display:"
        " the host side never imports the central side",
        "consumer/worker.py:3: consumer.worker imports producer.spool:"
        " the central side never imports the host side",
    ]


def test_schemas_imports_neither_side(tmp_path: Path) -> None:
    tree(tmp_path, {
        "schemas/config.py": "from producer import shared\nfrom consumer import clock\n",
        "producer/shared.py": "",
        "consumer/clock.py": "",
    })  # fmt: skip
    assert problems(tmp_path) == [
        "schemas/config.py:1: schemas.config imports producer.shared:"
        " schemas is shared by both sides and imports neither",
        "schemas/config.py:2: schemas.config imports consumer.clock:"
        " schemas is shared by both sides and imports neither",
    ]


def test_no_module_imports_a_conftest(tmp_path: Path) -> None:
    tree(tmp_path, {
        "tests/conftest.py": "",
        "tests/support/vhosts.py": "from tests.conftest import Vhost, missing\n",
        "tests/unit/test_x.py": "from tests import conftest\n",
        "tests/unit/test_y.py": "import conftest\n",
    })  # fmt: skip
    assert problems(tmp_path) == [
        "tests/support/vhosts.py:1: imports tests.conftest: a conftest holds fixtures,"
        " which pytest finds; put what is shared in tests/support/",
        "tests/unit/test_x.py:1: imports tests.conftest: a conftest holds fixtures,"
        " which pytest finds; put what is shared in tests/support/",
        "tests/unit/test_y.py:1: imports conftest: a conftest holds fixtures,"
        " which pytest finds; put what is shared in tests/support/",
    ]


def test_the_host_side_imports_only_what_a_host_has(tmp_path: Path) -> None:
    tree(tmp_path, {
        "schemas/config.py": "import tomllib\nimport msgspec\n",
        "schemas/render.py": "import jinja2\n",
        "producer/hook.py": "from schemas import config\n",
        "producer/publisher.py": "def later():\n    import pika\n    from schemas import render\n",
        "consumer/worker.py": "import jinja2\n",
    })  # fmt: skip
    files, lines = host_side(tmp_path)
    assert [str(f) for f in files] == [
        "producer/__init__.py", "producer/hook.py", "producer/publisher.py",
        "schemas/__init__.py", "schemas/config.py", "schemas/render.py",
    ]  # fmt: skip
    assert lines == [
        "schemas/render.py:1: schemas.render imports jinja2: a host has only the standard"
        " library and pika, msgspec, tomli"
    ]


def test_the_host_list_is_the_host_side(tmp_path: Path) -> None:
    tree(tmp_path, {"producer/hook.py": "from schemas import paths\n", "schemas/paths.py": ""})
    (tmp_path / "deploy" / "host").mkdir(parents=True)
    (tmp_path / "deploy" / "host" / "modules.txt").write_text(
        "producer/__init__.py\nproducer/hook.py\nschemas/event.py\n"
    )
    (line,) = host_side(tmp_path)[1]
    assert "missing ['schemas/__init__.py', 'schemas/paths.py'], extra ['schemas/event.py']" in line
    assert main([str(tmp_path)]) == 1


# --- the folders of consumer/ -------------------------------------------------------------

FOLDERS = sorted(p.parent.name for p in (REPO / "consumer").glob("*/__init__.py"))


def real_tree(tmp_path: Path) -> Path:
    """A copy of the three packages, to break on purpose."""
    for package in ("schemas", "producer", "consumer"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "templates"))  # fmt: skip
    return tmp_path


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_wrong_import_in_each_folder_is_named(tmp_path: Path, folder: str) -> None:
    rules, _ = folder_rules(REPO)
    forbidden = sorted({*FOLDERS, "cli"} - rules[folder] - {folder})
    root = real_tree(tmp_path)
    assert forbidden, f"consumer/{folder} may import every other folder"
    init = root / "consumer" / folder / "__init__.py"
    if "Other folders import from" in init.read_text():  # name the new module there too
        init.write_text(init.read_text().replace("(never\napprise", "(never wrong,\napprise"))
    (root / "consumer" / folder / "wrong.py").write_text(
        f"from consumer.{forbidden[0]} import something\n"
    )
    assert problems(root) == [
        f"consumer/{folder}/wrong.py:1: consumer.{folder}.wrong imports"
        f" consumer.{forbidden[0]}: consumer/{folder}/ may import only"
        f" {', '.join(sorted(rules[folder])) or 'nothing of consumer'} (its __init__.py says why)"
    ]


def test_a_channel_module_imported_from_another_folder_is_named(tmp_path: Path) -> None:
    # The pipeline and the digest hold the protocol (channels.base) that channels.outlets
    # built: an import of a channel module itself, from any other folder, is a breach.
    root = real_tree(tmp_path)
    (root / "consumer" / "alerts" / "wrong.py").write_text(
        "from consumer.channels.base import Channel\n"
        "from consumer.channels.slack import payload\n"
        "from consumer.channels import mail\n"
    )
    (root / "consumer" / "digest" / "wrong.py").write_text("import consumer.channels.webhook\n")
    allowed = "base, mail_headers, mail_templates, outlets"
    assert problems(root) == [
        f"consumer/alerts/wrong.py:2: consumer.alerts.wrong imports consumer.channels.slack:"
        f" other folders import only {allowed} of consumer/channels/ (its __init__.py says why)",
        f"consumer/alerts/wrong.py:3: consumer.alerts.wrong imports consumer.channels.mail:"
        f" other folders import only {allowed} of consumer/channels/ (its __init__.py says why)",
        f"consumer/digest/wrong.py:1: consumer.digest.wrong imports consumer.channels.webhook:"
        f" other folders import only {allowed} of consumer/channels/ (its __init__.py says why)",
    ]
    assert main([str(root)]) == 1


def test_a_channel_module_the_export_rule_does_not_name_is_named(tmp_path: Path) -> None:
    root = real_tree(tmp_path)
    (root / "consumer" / "channels" / "pager.py").write_text("from consumer.core import notice\n")
    assert problems(root) == [
        "consumer/channels/__init__.py: 'Other folders import from channels: … (never …)' must"
        " name its own folder and every module of it once (both: [], unknown: [],"
        " missing: ['pager'])"
    ]


def test_a_folder_without_a_rule_is_named(tmp_path: Path) -> None:
    root = real_tree(tmp_path)
    (root / "consumer" / "paging").mkdir()
    (root / "consumer" / "paging" / "__init__.py").write_text('"""Paging."""\n')
    found = problems(root)
    assert (
        "consumer/paging/__init__.py: no 'Imports from consumer: … (never …).' in its"
        " docstring" in found
    )
    # ... and every other folder's rule now misses it.
    assert sum("missing: ['paging']" in line for line in found) == len(FOLDERS)


def test_a_rule_must_allow_what_its_allowed_folders_may(tmp_path: Path) -> None:
    root = real_tree(tmp_path)
    init = root / "consumer" / "stages" / "__init__.py"
    before, after = "core, store, lookups, channels, silences (never", "store, lookups, channels,"
    init.write_text(init.read_text().replace(before, after + " silences (never core,"))
    assert problems(root) == [
        "consumer/stages/__init__.py: may import channels, which may import ['core']:"
        " allow those too, or forbid channels",
        "consumer/stages/__init__.py: may import detect, which may import ['core']:"
        " allow those too, or forbid detect",
        "consumer/stages/__init__.py: may import lookups, which may import ['core']:"
        " allow those too, or forbid lookups",
        "consumer/stages/__init__.py: may import silences, which may import ['core']:"
        " allow those too, or forbid silences",
        "consumer/stages/__init__.py: may import store, which may import ['core']:"
        " allow those too, or forbid store",
    ] + [line for line in problems(root) if "imports consumer.core" in line]


def test_the_architecture_page_shows_the_rules_as_they_are() -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    shown = page.split("<!-- imports:begin -->\n```mermaid\n", 1)[1].split("```\n<!--", 1)[0]
    assert shown == picture(folder_rules(REPO)[0]), (
        "docs/architecture.md's picture is not what the folders' rules say: paste the output"
        " of `python -m tests.support.imports --picture` between its imports markers"
    )


def test_the_picture_follows_a_changed_rule(tmp_path: Path) -> None:
    root = real_tree(tmp_path)
    init = root / "consumer" / "digest" / "__init__.py"
    rule = init.read_text().replace(
        "questions (never\nalerts,", "questions, stages (never\nalerts,"
    )
    init.write_text(rule)
    assert "    digest --> stages\n" in picture(folder_rules(root)[0])
    assert "    digest --> stages\n" not in picture(folder_rules(REPO)[0])


def test_a_union_evaluated_at_run_time_on_the_host_side_is_named(tmp_path: Path) -> None:
    tree(tmp_path, {
        "producer/hook.py": "from schemas import config\n",
        "schemas/config.py": (
            "from __future__ import annotations\n"
            "import msgspec\n"
            "class Base(msgspec.Struct):\n"
            "    a: int | None = None\n"          # line 4: msgspec evaluates it
            "class Leaf(Base):\n"
            "    b: dict[str, int | str]\n"       # line 6: inside a subscript too
            "    c: Optional[int] = None\n"
            "Alias = Base | Leaf\n"               # line 8: evaluated at import
            "FLAGS = 1 | 2\n"
            "def f(x: int | None) -> str | None:\n"  # not evaluated: fine
            "    return None\n"
        ),
    })  # fmt: skip
    lines = [line for line in host_side(tmp_path)[1] if "A | B" in line]
    assert [line.split(":")[1] for line in lines] == ["4", "6", "8"]
