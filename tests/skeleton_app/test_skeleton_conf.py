"""skeleton_app/conf stays complete (every option the engine's conf/ templates have) and names
every application resource after the app, "skeleton"."""

from __future__ import annotations

import configparser

import pytest
from skeleton_test_support import REPO_ROOT, SKELETON_DIR

CONF_FILES = ["application.conf", "model-swapper.conf", "model-checkpoint.conf",
              "rabbitmq.conf"]


def read(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    with open(path) as handle:
        parser.read_file(handle)
    return parser


@pytest.mark.parametrize("name", CONF_FILES)
def test_skeleton_conf_has_every_option_of_the_engine_template(name):
    engine = read(REPO_ROOT / "conf" / name)
    skeleton = read(SKELETON_DIR / "conf" / name)
    missing = [f"[{section}] {option}" for section in engine.sections()
               for option in engine.options(section)
               if not skeleton.has_option(section, option)]
    assert missing == [], f"skeleton_app/conf/{name} lacks {missing}"


def test_every_resource_is_named_after_the_skeleton_app():
    app = read(SKELETON_DIR / "conf" / "application.conf")
    swapper = read(SKELETON_DIR / "conf" / "model-swapper.conf")
    checkpoint = read(SKELETON_DIR / "conf" / "model-checkpoint.conf")
    assert app.get("repository", "db") == "skeleton"
    assert app.get("metric_streamer", "results_exchange_name") == "skeleton.model.results"
    assert app.get("metric_listener", "queue_name") == "skeleton.metric.custom.data"
    queues = {option: value for option, value in swapper.items("interface_bus")
              if option.endswith(("_queue", "_queue_prefix"))}
    assert queues == {
        "results_queue": "skeleton.mswapper.results",
        "model_input_queue_prefix": "skeleton.mswapper.model.input.",
        "scheduler_notification_queue": "skeleton.mswapper.scheduler.notification",
    }
    assert "skeleton" in checkpoint.get("storage", "root")


def test_supervisord_conf_runs_the_engine_programs_and_the_web_app():
    text = (SKELETON_DIR / "conf" / "supervisord.conf").read_text()
    sup = read(SKELETON_DIR / "conf" / "supervisord.conf")
    assert sup.get("include", "files").strip() == "../../conf/supervisord-base.conf"
    assert (SKELETON_DIR / "conf" / "../../conf/supervisord-base.conf").resolve().is_file()
    assert sup.get("program:webapp", "command").endswith("/../webapp.py")
    assert 'APPLICATION_CONFIG_PATH="%(here)s"' in text


def test_supervisorctl_in_the_conf_folder_finds_the_status_endpoint(monkeypatch):
    """`supervisorctl status` run in skeleton_app/conf (no -c, no environment) reads this
    supervisord.conf and talks to http://127.0.0.1:9001, where run.sh serves the status page."""
    from supervisor.options import ClientOptions

    monkeypatch.chdir(SKELETON_DIR / "conf")
    for name in ("SKELETON_SUPERVISOR_PORT", "HTMENGINE_RUN_DIR"):
        monkeypatch.delenv(name, raising=False)
    options = ClientOptions()
    options.realize(args=["status"])
    assert options.configfile == "supervisord.conf"
    assert options.serverurl == "http://127.0.0.1:9001"
    sup = read(SKELETON_DIR / "conf" / "supervisord.conf")
    assert sup.get("inet_http_server", "port") == "127.0.0.1:%(ENV_SKELETON_SUPERVISOR_PORT)s"
    assert not sup.has_section("unix_http_server")
    run_sh = (SKELETON_DIR / "run.sh").read_text()
    assert 'SKELETON_SUPERVISOR_PORT="${SKELETON_SUPERVISOR_PORT:-9001}"' in run_sh
