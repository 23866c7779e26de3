"""A log file per run in backups/logs/: what ran, timings, sizes, errors; never a secret."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

from usecases.files import FILE_MODE, private_dir


def open_run_log(logs_dir: Path, kind: str, now_local: datetime) -> tuple[logging.Logger, Path]:
    private_dir(logs_dir)
    path = logs_dir / f"{kind}_{now_local.strftime('%Y%m%d_%H%M%S')}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    os.close(fd)
    logger = logging.getLogger(f"dumpledger.run.{path.name}.{os.getpid()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger, path


def close_run_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
