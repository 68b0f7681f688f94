"""The llama-server manager: find, reuse, start, wait, watch, stop.

It knows nothing of agents. One command-line builder serves both a real llama-server
binary and the bundled engine (`python -m coder.engine`), and one process manager runs
either. A server coder did not start is never stopped.
"""

from coder.server.command import API_KEY_ENV, build_command, redact, server_env, template_path
from coder.server.detached import pidfile_path, pidfile_process, start_detached, stop_detached
from coder.server.endpoint import Endpoint, Probe, ServerError, endpoint, http_get, probe
from coder.server.health import Health, HealthCheck
from coder.server.manager import connect, start, stop, switch_model, watch
from coder.server.process import LOG_NAME, Server, log_tail, stop_process

__all__ = [
    "API_KEY_ENV",
    "LOG_NAME",
    "Endpoint",
    "Health",
    "HealthCheck",
    "Probe",
    "Server",
    "ServerError",
    "build_command",
    "connect",
    "endpoint",
    "http_get",
    "log_tail",
    "pidfile_path",
    "pidfile_process",
    "probe",
    "redact",
    "server_env",
    "start",
    "start_detached",
    "stop",
    "stop_detached",
    "stop_process",
    "switch_model",
    "template_path",
    "watch",
]
