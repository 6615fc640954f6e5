"""The library the services, the API and the adapters share (no service of its own): parsing
and checking samples (plaintext, sample_validation), storing them and streaming rows to models
(metric_streamer), defining models for metrics (scalar_metric_utils) and the results messages
(results_serialization)."""
