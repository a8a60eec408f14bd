"""One host's flood cannot delay another host's login (issue 17, finding 1).

Real parts: the broker (lanes, topic permissions), ``loginwatch host add`` users, a real
worker, the real hook for the victim's logins and an SMTP server of our own. The flooding
host publishes without confirms at a fixed 3,500 messages a second (``tests/support/
flood.py``, its own process): first junk, then valid logins under its own name, each from
a new source. Meanwhile another host logs in, one login after another through each phase;
a mail must be in the inbox within 2 s of its hook starting, as it is without the flood. A
queue the flood shares would hold every one of them for far longer (the issue measured 21 s
at a 2,000-message limit). On two cores shared with the rest of the suite one login can be
starved of CPU for a moment, flood or not, so the test asks for the fastest login of each
phase and prints them all; ``make chaos``'s ``flood`` scenario measures the distribution
(p99) on a machine of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas import topology
from tests.support.hookrun import PAM_ENV, run_hook
from tests.support.hookrun import write_config as host_config
from tests.support.lanes import hosts_in_other_lanes, lane_of, lanes_of
from tests.support.services import Vhost, rabbitmqctl
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import ROOT, loginwatch, running_worker, take_all, write_config

pytestmark = pytest.mark.integration

RATE = 3500  # messages per second, as the issue measured one host publishing without confirms
PHASE_S = 3.0  # junk, then valid logins
BOUND_S = 2.0  # login to inbox
BUDGET = 100  # [worker] speaker_budget (the default)
DEAD_PER_SPEAKER = 10  # [worker] dead_per_speaker (the default)


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Host names of this test's own (broker users are the whole node's, not a vhost's);
    their users are deleted afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        rabbitmqctl("delete_user", topology.host_user(name), check=False)


def add_host(config: Path, secrets: Path, name: str) -> str:
    """``loginwatch host add NAME``: the host user; returns its password."""
    added = loginwatch("host", "add", name, "--config", str(config), "--secrets-dir",
                       str(secrets))  # fmt: skip
    assert added.returncode == 0, added.stderr
    return (secrets / f"{name}.password").read_text().strip()


def flooder_and_victim(
    vh: Vhost, config: Path, tmp_path: Path, flooder: str, victim: str
) -> tuple[str, Path]:
    """Both hosts' users (``host add``): the flooder's password, and the victim's real hook
    config, publishing as its own user."""
    secrets = tmp_path / "secrets"
    flood_password = add_host(config, secrets, flooder)
    victim_password = add_host(config, secrets, victim)
    (tmp_path / "victim").mkdir()
    url = vh.url(topology.host_user(victim), victim_password)
    return flood_password, host_config(tmp_path / "victim", url, host=victim)


def login(hook: Path, smtp: SmtpServer, user: str, timeout: float = 20) -> float:
    """A real hook run for ``user``; seconds from the hook's start to the mail's arrival."""
    started = time.time()
    run = run_hook(hook, env={**PAM_ENV, "PAM_USER": user})
    assert run.returncode == 0, run.stderr
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with smtp.lock:
            for received, arrived in zip(smtp.messages, smtp.arrived, strict=True):
                if f"{user}@" in str(received.message["Subject"]):
                    return arrived - started
        time.sleep(0.02)
    raise AssertionError(f"no mail for {user} within {timeout} s")


def logins_until(
    hook: Path, smtp: SmtpServer, label: str, end: float, most: int = 3
) -> list[float]:
    """The victim's logins, one after another until ``time.monotonic()`` passes ``end`` (at
    least one, at most ``most``): seconds from each hook's start to its mail."""
    took: list[float] = []
    while not took or (time.monotonic() < end and len(took) < most):
        took.append(login(hook, smtp, f"{label}-{len(took)}"))
    return took


def seconds(took: list[float]) -> str:
    return "/".join(f"{one:.2f}" for one in took) + " s"


def oldest_alerts(config: Path) -> dict[str, str]:
    """``loginwatch status``'s "oldest alert" of each alerts queue (the lane probes')."""
    status = loginwatch("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    return {line.split()[0]: line.split()[5] for line in status.stdout.splitlines()
            if line.startswith("loginwatch.alerts")}  # fmt: skip


def test_a_flooding_host_does_not_delay_another_hosts_login(
    vh: Vhost, tmp_path: Path, names: list[str]
) -> None:
    tag = uuid.uuid4().hex[:6]
    # The worker serves its metrics on a socket in its runtime directory, as its unit would:
    # what `loginwatch status` reads.
    run = tmp_path / "run"
    (run / "worker-1").mkdir(mode=0o750, parents=True)
    run.chmod(0o755)
    with SmtpServer() as smtp:
        metrics = f'[metrics]\nruntime_dir = "{run}"\n'
        config = write_config(tmp_path / "central.toml", vh, smtp_port=smtp.port, extra=metrics)
        setup = loginwatch("setup", "--config", str(config))
        assert setup.returncode == 0, setup.stderr
        flooder = f"flood-{tag}"
        candidates = [f"db-{n}-{tag}" for n in range(1, 9)]
        flooded, others = hosts_in_other_lanes(vh, flooder, candidates)
        victim = others[0]
        names += [flooder, victim]
        flood_password, hook = flooder_and_victim(vh, config, tmp_path, flooder, victim)
        runtime = {"RUNTIME_DIRECTORY": str(run / "worker-1")}
        with running_worker(config, tmp_path / "worker.log", runtime) as worker:
            quiet = login(hook, smtp, "quiet")
            started = time.monotonic()
            flooding = subprocess.Popen(
                [sys.executable, "-m", "tests.support.flood",
                 vh.url(topology.host_user(flooder), flood_password), "--host", flooder,
                 "--rate", str(RATE), "--phase", f"junk:{PHASE_S}", "--phase",
                 f"valid:{PHASE_S * 2}"],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(PHASE_S / 3)
            during_junk = logins_until(hook, smtp, "root-junk", started + PHASE_S)
            time.sleep(max(0.0, started + PHASE_S + 0.5 - time.monotonic()))
            during_valid = logins_until(hook, smtp, "root-valid", started + PHASE_S * 3)
            out, _ = flooding.communicate(timeout=60)
            phases = [json.loads(line) for line in out.splitlines()]
            print(f"\nflood from host-{flooder} ({flooded}), victim {victim}: "
                  + ", ".join(f"{p['phase']} {p['sent']} at {p['rate']}/s" for p in phases)
                  + f"; login to inbox: quiet {quiet:.2f} s, during junk {seconds(during_junk)},"
                  f" during valid logins {seconds(during_valid)}")  # fmt: skip
            assert quiet <= BOUND_S
            assert min(during_junk) <= BOUND_S, (during_junk, quiet)
            assert min(during_valid) <= BOUND_S, (during_valid, quiet)
            alert = worker.wait_for(rf"host-flooding:host-{flooder}:\d+ immediate"
                                    r" ops@test.example: sent", timeout=30)  # fmt: skip
            # Every lane's oldest alert, the flooder's too: its logins were decided as fast
            # as they came (on the flood counts, nothing written), so no backlog is left.
            waits = oldest_alerts(config)
        log = worker.text()
        print(f"status, oldest alert: {waits}")
        assert set(waits) == set(topology.alert_queues(topology.DEFAULT_LANES))
        assert all(wait in ("0s", "1s", "2s") for q, wait in waits.items() if q != flooded)
        assert waits[flooded] != "-"
        assert "decided while" not in log  # shed and decided quietly, never logged one by one
    assert [p["phase"] for p in phases] == ["junk", "valid"]
    assert all(p["sent"] >= RATE * PHASE_S * 0.5 for p in phases), phases
    # The flood was noticed and said so, once: a system alert, rate-limited log lines.
    assert f"host-{flooder} floods:" in alert
    [flooded_mail] = [m.message for m in smtp.messages
                  if m.message["X-Loginwatch-System"] == "host-flooding"]  # fmt: skip
    assert f"Host {flooder} is flooding loginwatch" in str(flooded_mail["Subject"])
    text = flooded_mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "undecodable event" in text  # why its messages were refused
    assert log.count("dead-lettered") <= BUDGET + DEAD_PER_SPEAKER, "one ERROR line per junk"
    # Its junk pushed no one's dead letters out: a bounded number of them is in the queue.
    dead = take_all(vh, topology.DEAD_QUEUE)
    assert BUDGET <= len(dead) <= BUDGET + DEAD_PER_SPEAKER


def test_a_flood_of_heartbeats_and_logouts_does_not_delay_another_hosts_login(
    vh: Vhost, tmp_path: Path, names: list[str]
) -> None:
    """Heartbeats and logouts have routing keys of their own, so one host reaches up to
    three lanes (one per message type: the bound docs/central.md states). A host in none
    of them logs in while the flooder sends valid heartbeats (each listing 32 addresses:
    a store write each) and logouts at the flood rate: its mail is as quick as without."""
    tag = uuid.uuid4().hex[:6]
    with SmtpServer() as smtp:
        config = write_config(tmp_path / "central.toml", vh, smtp_port=smtp.port)
        setup = loginwatch("setup", "--config", str(config))
        assert setup.returncode == 0, setup.stderr
        flooder = f"beats-{tag}"
        reached = lanes_of(vh, topology.host_user(flooder))
        candidates = [f"db-{n}-{tag}" for n in range(1, 17)]
        victim = next(n for n in candidates if lane_of(vh, topology.host_user(n)) not in reached)
        names += [flooder, victim]
        flood_password, hook = flooder_and_victim(vh, config, tmp_path, flooder, victim)
        with running_worker(config, tmp_path / "worker.log"):
            quiet = login(hook, smtp, "quiet")
            started = time.monotonic()
            flooding = subprocess.Popen(
                [sys.executable, "-m", "tests.support.flood",
                 vh.url(topology.host_user(flooder), flood_password), "--host", flooder,
                 "--rate", str(RATE), "--phase", f"records:{PHASE_S * 2}"],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(PHASE_S / 2)
            during = logins_until(hook, smtp, "root-records", started + PHASE_S * 2)
            out, _ = flooding.communicate(timeout=60)
    [phase] = [json.loads(line) for line in out.splitlines()]
    print(f"\nheartbeat and logout flood from host-{flooder} (lanes {sorted(reached)}),"
          f" victim {victim}: {phase['sent']} at {phase['rate']}/s; login to inbox: quiet"
          f" {quiet:.2f} s, during {seconds(during)}")  # fmt: skip
    assert len(reached) <= len(topology.MESSAGE_TYPES)
    assert phase["sent"] >= RATE * PHASE_S, phase
    assert quiet <= BOUND_S
    assert min(during) <= BOUND_S, (during, quiet)
