# The original HTM Engine README's "Sending data" program; only `nta.utils` -> `nta_utils`.
# MESSAGE_QUEUE_NAME is the README's placeholder: run_readme_program.py defines it (the
# custom-metrics queue of application.conf).
import json
from nta_utils import message_bus_connector

msg = json.dumps(dict(protocol="plain", data=["foo.bar.stats 21 1443197361"]))
bus = message_bus_connector.MessageBusConnector()
bus.publish(mqName=MESSAGE_QUEUE_NAME, body=msg, persistent=True)
