"""Connection parameters of the original AMQP client, read from rabbitmq.conf (in
$APPLICATION_CONFIG_PATH): `getRabbitmqConnectionParameters()` for AMQP,
`RabbitmqManagementConnectionParams()` for the management HTTP API (``[management] port``,
default 15672)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nta_utils.config import Config
from nta_utils.message_bus import RABBITMQ_CONF, AmqpConnectionParams
from nta_utils.rabbitmq_management import managementPort


class RabbitmqConfig(Config):
    """rabbitmq.conf of the application."""

    CONFIG_NAME = RABBITMQ_CONF

    def __init__(self) -> None:
        super().__init__(self.CONFIG_NAME)


@dataclass
class PlainCredentials:
    """User name and password (the password is not shown by repr)."""

    username: str
    password: str = field(repr=False)


@dataclass
class ConnectionParams:
    """Where to connect: host, port, vhost and credentials (RabbitMQ's defaults)."""

    host: str = "localhost"
    port: int = 5672
    vhost: str = "/"
    credentials: PlainCredentials = field(
        default_factory=lambda: PlainCredentials("guest", "guest"))

    def toBusParams(self) -> AmqpConnectionParams:
        """The same parameters for `nta_utils.message_bus.MessageBus`."""
        return AmqpConnectionParams(host=self.host, port=self.port, virtual_host=self.vhost,
                                    user=self.credentials.username,
                                    password=self.credentials.password)


def getRabbitmqConnectionParameters() -> ConnectionParams:
    """The broker's connection parameters from rabbitmq.conf."""
    params = AmqpConnectionParams.from_config(RabbitmqConfig())
    return ConnectionParams(host=params.host, port=params.port, vhost=params.virtual_host,
                            credentials=PlainCredentials(params.user, params.password))


@dataclass
class RabbitmqManagementConnectionParams:
    """Management API settings: the broker's host, vhost and credentials with
    ``[management] port`` of rabbitmq.conf (default 15672)."""

    host: str = field(init=False)
    port: int = field(init=False)
    vhost: str = field(init=False)
    username: str = field(init=False)
    password: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        config = RabbitmqConfig()
        params = AmqpConnectionParams.from_config(config)
        self.host = params.host
        self.port = managementPort(config)
        self.vhost = params.virtual_host
        self.username = params.user
        self.password = params.password
