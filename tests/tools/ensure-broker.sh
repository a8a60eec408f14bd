#!/bin/sh
# Starts the local RabbitMQ when it is installed but not running, and waits for it.
set -u
command -v rabbitmqctl >/dev/null 2>&1 || { echo "ensure-broker: rabbitmq-server is not installed" >&2; exit 0; }
if rabbitmqctl -q status >/dev/null 2>&1; then exit 0; fi
echo "ensure-broker: starting rabbitmq-server"
rabbitmq-server -detached >/dev/null 2>&1 || true
timeout 120 rabbitmqctl -q await_startup >/dev/null 2>&1 \
    || { echo "ensure-broker: RabbitMQ did not start within 120 s" >&2; exit 1; }
