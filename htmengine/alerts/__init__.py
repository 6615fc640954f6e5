"""Alert webhooks: an engine service that follows the results exchange and POSTs a JSON alert
to the ``[alerts] urls`` when a row's anomaly likelihood reaches ``[alerts] threshold``.

Run with ``python -m htmengine.alerts``.
"""
