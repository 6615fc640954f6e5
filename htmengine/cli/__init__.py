"""The ``htmengine`` console command: what users of a running engine do by hand (status,
metrics, monitor, unmonitor, delete, send, tail, plot, clean). ``main.py`` holds the click
commands; each job lives in its own module."""
