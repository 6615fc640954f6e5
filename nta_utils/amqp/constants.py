"""AMQP constants of the original client."""


class AMQPDeliveryModes:
    """Message delivery modes."""

    NON_PERSISTENT_MESSAGE = 1
    PERSISTENT_MESSAGE = 2


class AMQPErrorCodes:
    """AMQP reply codes of interest (in Channel.Close / Connection.Close)."""

    NOT_FOUND = 404
