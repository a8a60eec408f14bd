"""The import rules of ``make lint`` (tests/support/imports.py), on small trees of our own."""

from __future__ import annotations

from pathlib import Path

from tests.support.imports import main, problems

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
        "consumer/store/__init__.py": "from .store import Store\n",
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
