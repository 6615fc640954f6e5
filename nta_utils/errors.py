"""Exception tree of the plumbing layer; library errors are translated into these at the boundary."""


class NtaUtilsError(Exception):
    """Base of every error raised by nta_utils."""


class ConfigError(NtaUtilsError):
    """A configuration path, file, section or option is missing or invalid (the message names it)."""


class BusError(NtaUtilsError):
    """Base of message-bus (RabbitMQ) errors."""


class BusConnectionError(BusError):
    """The broker could not be reached, or the connection was lost and retries ran out."""


class BrokerAccessError(BusConnectionError):
    """The broker answered but refused the connection (credentials, virtual host, protocol):
    waiting does not help."""


class UnroutableMessageError(BusError):
    """A mandatory publish was returned by the broker: no queue is bound to take it."""


class MessageNackedError(BusError):
    """The broker refused a published message (negative publisher confirm)."""


class QueueNotFoundError(BusError):
    """The named queue or exchange does not exist."""


class DatabaseError(NtaUtilsError):
    """A database operation failed after the retries allowed for transient errors."""


class MessageLimitError(NtaUtilsError, ValueError):
    """A message body exceeds a configured size or JSON nesting limit, or is not JSON."""


class InvalidArgumentError(NtaUtilsError, ValueError):
    """An argument has a value the call does not accept, or the call came out of order (a
    programming error); the message names what is wrong."""


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type (a programming error); the message names it."""
