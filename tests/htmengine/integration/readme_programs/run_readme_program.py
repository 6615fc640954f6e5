"""Run one of the original README's programs (a file of this folder) as a script
(``__name__ == "__main__"``), with the two names the README uses without defining them:
``MESSAGE_QUEUE_NAME`` (its placeholder for the custom-metrics queue: application.conf
[metric_listener] queue_name) and ``os`` (not imported by "Post-processing the results").

Usage: python run_readme_program.py PROGRAM.py
"""

import os
import runpy
import sys

from htmengine.config import app_config

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    sys.stdout.reconfigure(line_buffering=True)
    runpy.run_path(sys.argv[1], run_name="__main__", init_globals={
        "MESSAGE_QUEUE_NAME": app_config().get("metric_listener", "queue_name"),
        "os": os,
    })
