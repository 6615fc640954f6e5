"""Adapters between htmengine and its data sources."""
