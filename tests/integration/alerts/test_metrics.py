"""consumer/core/metrics.py and metrics_server.py: what a Prometheus scrape of /metrics shows."""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.core import metrics, metrics_server
from schemas import topology
from schemas.config import MetricsConfig, parse_config
from schemas.errors import ConfigError
from schemas.event import encode
from tests.support.factories import event
from tests.support.services import Vhost, fresh_vhost
from tests.support.smtp_server import SmtpServer, free_port
from tests.support.worker_helpers import (
    loginwatch,
    publish,
    running_worker,
    wait_depth,
    write_config,
)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = metrics_server.serve_tcp("127.0.0.1:0", "test")
    yield int(server.listener.getsockname()[1])
    server.close()


def scrape(port: int) -> dict[str, float]:
    """Every sample of our metrics: ``name{labels}`` → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.match(r"^(loginwatch_\S+) (\S+)$", line)
        if match and "_created" in match[1]:
            continue  # creation timestamps, not counts
        if match:
            samples[match[1]] = float(match[2])
    return samples


def test_a_scrape_shows_what_the_worker_counted(port: int) -> None:
    before = scrape(port)
    t0 = 1_800_000_000.0
    metrics.decoded("failure")
    metrics.settled("done")
    metrics.settled("dead")
    metrics.mail_sent(t0, t0 + 0.4)
    metrics.mail_retried()
    metrics.mails_failed(parked=2, dead=1)
    metrics.first_seen(address=True, network=False, country=True)
    metrics.digest_window_sent()
    metrics.store_error()
    after = scrape(port)
    grew = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    assert grew == {
        'loginwatch_logins_total{outcome="failure"}': 1,
        'loginwatch_events_total{verdict="done"}': 1,
        'loginwatch_events_total{verdict="dead"}': 1,
        'loginwatch_mails_total{result="sent"}': 1,
        'loginwatch_mails_total{result="retried"}': 1,
        'loginwatch_mails_total{result="parked"}': 2,
        'loginwatch_mails_total{result="dead"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="0.5"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="1.0"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="2.5"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="5.0"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="10.0"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="30.0"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="60.0"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="300.0"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="1800.0"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="7200.0"}': 1,
        'loginwatch_delivery_latency_seconds_bucket{le="+Inf"}': 1,
        "loginwatch_delivery_latency_seconds_count": 1,
        "loginwatch_delivery_latency_seconds_sum": pytest.approx(0.4),
        'loginwatch_first_seen_total{scope="address"}': 1,
        'loginwatch_first_seen_total{scope="country"}': 1,
        "loginwatch_digest_windows_total": 1,
        "loginwatch_store_errors_total": 1,
    }


def test_every_verdict_and_mail_result_is_exported_before_it_happens(port: int) -> None:
    # A counter that appears only at its first increment breaks rate() alerts.
    samples = scrape(port)
    for verdict in ("done", "park", "dead"):
        assert f'loginwatch_events_total{{verdict="{verdict}"}}' in samples
    for result in ("sent", "retried", "parked", "dead"):
        assert f'loginwatch_mails_total{{result="{result}"}}' in samples


@pytest.mark.parametrize("listen", ["9464", "localhost", ":9464", "127.0.0.1:http", "h:70000"])
def test_a_bad_listen_address_names_the_key(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"\$\.metrics: listen: expected HOST:PORT"):
        parse_config(f'[metrics]\nlisten = "{listen}"\n')


def test_nothing_set_means_no_endpoint_and_a_bad_environment_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert metrics_server.start(MetricsConfig(), {}).servers == ()
    assert parse_config('[metrics]\nlisten = "127.0.0.1:9464"\n').metrics.listen == "127.0.0.1:9464"
    served = metrics_server.start(MetricsConfig(), {metrics_server.LISTEN_ENV: "nonsense"})
    assert served.servers == ()
    assert "$LOGINWATCH_METRICS_LISTEN: expected HOST:PORT" in caplog.text


def test_a_port_in_use_is_a_warning_not_an_exit(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    config = MetricsConfig(listen=f"127.0.0.1:{port}")
    served = metrics_server.start(config, {})
    assert served.port is None
    [record] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert record.getMessage().startswith(
        "metrics: $.metrics.listen ([metrics] listen): cannot listen on"
    )
    assert "Address already in use" in record.getMessage()
    assert "LOGINWATCH_METRICS_PORT_OFFSET=N" in record.getMessage()
    assert "alerting goes on" in record.getMessage()


def test_intake_lag_and_unacked_deliveries_are_exported(port: int) -> None:
    now = 1_800_000_000.0
    metrics.acked("loginwatch.digest", [now - 3, now + 60], now)
    metrics.holding("loginwatch.digest", 2, 7.5)
    seen = scrape(port)
    # A clock stepped back between arrival and ack counts as no lag, not negative.
    assert seen['loginwatch_intake_lag_seconds_count{queue="loginwatch.digest"}'] == 2
    assert seen['loginwatch_intake_lag_seconds_sum{queue="loginwatch.digest"}'] == 3
    assert seen['loginwatch_unacked_deliveries{queue="loginwatch.digest"}'] == 2
    assert seen['loginwatch_oldest_unacked_seconds{queue="loginwatch.digest"}'] == 7.5


@pytest.mark.integration
def test_a_running_worker_counts_what_it_did(vhost: Vhost, tmp_path: Path) -> None:
    listen_port = free_port()
    with fresh_vhost("loginwatch-metrics") as vh, SmtpServer() as smtp:
        config = write_config(
            tmp_path / "loginwatch.toml",
            vh,
            smtp_port=smtp.port,
            extra=f'\n[metrics]\nlisten = "127.0.0.1:{listen_port}"\n',
        )
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log") as worker:
            publish(vh, encode(event(id=os.urandom(16), time=datetime.now(UTC))))
            assert len(smtp.wait_for(1)) == 1
            publish(vh, b"\xc1 not msgpack")
            assert wait_depth(vh, topology.DEAD_QUEUE, 1) == 1, worker.text()
            seen = scrape(listen_port)
    assert seen['loginwatch_events_total{verdict="done"}'] == 1
    assert seen['loginwatch_events_total{verdict="dead"}'] == 1
    assert seen['loginwatch_logins_total{outcome="success"}'] == 1
    assert seen['loginwatch_mails_total{result="sent"}'] == 1
    assert seen["loginwatch_delivery_latency_seconds_count"] == 1
    # Both deliveries were acked (the dead one once it was in the dead queue).
    assert seen['loginwatch_unacked_deliveries{queue="loginwatch.alerts"}'] == 0


def test_worker_instance_n_serves_on_the_configured_port_plus_n(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    served = metrics_server.start(
        MetricsConfig(listen=f"127.0.0.1:{port - 2}"), {metrics_server.OFFSET_ENV: "2"}
    )
    assert served.port == port
    assert 'loginwatch_mails_total{result="sent"}' in scrape(port)
    served.close()
    served = metrics_server.start(
        MetricsConfig(listen="127.0.0.1:9464"), {metrics_server.OFFSET_ENV: "one"}
    )
    assert served.servers == ()
    assert "LOGINWATCH_METRICS_PORT_OFFSET: expected a number" in caplog.text
