#!/bin/sh
# Starts the local RabbitMQ when it is installed but not running, and waits for it (120 s);
# on a node that runs already (CI's), only enables the plugin loginwatch's alert lanes need.
# `rabbitmqctl await_startup` returns at once, failing, while the node is still booting (no
# node to ask yet), so it is asked again until the node answers or the bound passes.
set -u
BOUND=${LOGINWATCH_BROKER_BOUND:-120}
command -v rabbitmqctl >/dev/null 2>&1 || { echo "ensure-broker: rabbitmq-server is not installed" >&2; exit 0; }
# The lanes exchange (x-consistent-hash) ships with RabbitMQ as a plugin. Enabling it is
# idempotent and needs no restart; --offline writes enabled_plugins for a node yet to start.
PLUGIN=rabbitmq_consistent_hash_exchange
enable_plugin() {
    rabbitmq-plugins -q enable "$PLUGIN" >/dev/null \
        || { echo "ensure-broker: cannot enable $PLUGIN" >&2; exit 1; }
    exit 0
}
if rabbitmqctl -q status >/dev/null 2>&1; then enable_plugin; fi
rabbitmq-plugins -q enable --offline "$PLUGIN" >/dev/null 2>&1 || true
echo "ensure-broker: starting rabbitmq-server"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl start rabbitmq-server >/dev/null 2>&1 || rabbitmq-server -detached >/dev/null 2>&1 || true
else
    rabbitmq-server -detached >/dev/null 2>&1 || true
fi
start=$(date +%s)
while :; do
    left=$((start + BOUND - $(date +%s)))
    [ "$left" -gt 0 ] || { echo "ensure-broker: RabbitMQ did not start within $BOUND s" >&2; exit 1; }
    timeout "$left" rabbitmqctl -q await_startup >/dev/null 2>&1 && enable_plugin
    sleep 1
done
