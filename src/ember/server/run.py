"""``serve(app, config)``: choose in-process or supervised workers."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from ember.server.config import ServerConfig
from ember.server.sockets import bind, has_reuseport

logger = logging.getLogger("ember.server")


def serve(app: Any, config: ServerConfig) -> None:
    """Run ``app`` as configured until SIGINT/SIGTERM."""
    config.apply_log_level()
    workers = config.workers
    if workers > 1 and not (hasattr(os, "fork") and has_reuseport()):
        warnings.warn(
            "workers>1 needs fork() and SO_REUSEPORT, which this platform lacks; running one "
            "process instead", RuntimeWarning, stacklevel=3,
        )
        workers = 1
    if workers == 1:
        from ember.server.worker import run_worker

        sock = bind(config)
        try:
            run_worker(app, config, sock)
        finally:
            sock.close()
        return
    from ember.server.supervisor import Supervisor

    Supervisor(app, config).run()
