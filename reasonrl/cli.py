"""What train.py and evaluate.py share: --help, the validated config, and errors a user can fix printed as
one line each (exit code 2) instead of a traceback."""
from __future__ import annotations

import sys
from typing import Callable


def run_command(argv: list[str], doc: str, body: Callable[[object], int], *, search: bool = False) -> int:
    """--help prints doc and every key; otherwise load and validate the config (search: the search section
    too) and return body(cfg)."""
    from reasonrl.config import ConfigError, help_text

    if "-h" in argv or "--help" in argv:
        print(doc)
        print(help_text())
        return 0
    from reasonrl.checkpoint import CheckpointError
    from reasonrl.data import DataError
    from reasonrl.faults import RunStopped
    from reasonrl.models import ModelLoadError
    from reasonrl.validate import load_config
    from verifiers import VerifierSetupError

    try:
        return body(load_config(argv, search=search))
    except (ConfigError, ModelLoadError, DataError, VerifierSetupError, CheckpointError, FileNotFoundError,
            FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunStopped as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: resume with checkpoint.resume=auto (from the last checkpoint)", file=sys.stderr)
        return 130
