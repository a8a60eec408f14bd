"""RabbitMQ, for the central side: the only folder that talks AMQP or runs ``rabbitmqctl``.

Owns: the pika connection (``connection``: no pika outside it), a delivery as plain data
(``delivery``), the consumer runtime every long-running handler runs in (``runtime``:
connect, fail over, reconnect, signals, batched acks), parking and dead-lettering
(``retries``), reading and replaying the dead queue (``deadletters``), host users
(``host_users``) and the routing keys each may use (``topic_keys``), moving a retired
queue's messages (``moves``), the topology as a definitions file (``definitions_file``),
queue limits as policies (``queue_limits``) and the ``rabbitmqctl`` runner.

Imports from consumer: core (never alerts, channels, commands, detect, digest, lookups,
questions, silences, stages, store, web).
"""
