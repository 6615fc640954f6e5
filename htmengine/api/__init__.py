"""The engine's HTTP API: JSON over every metric and model, health, Prometheus exposition.

`htmengine.api.app.create_app` builds the ASGI application (FastAPI); ``python -m
htmengine.api`` serves it with uvicorn on ``application.conf`` ``[api] host``/``port``.
"""
