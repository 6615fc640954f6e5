"""Monitors of the engine itself (``rmq_metric_collector_agent``: RabbitMQ queue depths as
custom metrics)."""
