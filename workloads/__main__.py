"""``python -m workloads {prepare,train,export,serve}``.

Each subcommand lives in its own module, which exposes ``add_parser(subparsers)``
and sets ``func`` on its parser. Errors caused by bad input print one line,
``error: ...``, from rank 0 only (every rank of a torchrun job sees the same
input and fails the same way) and exit 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from workloads import data, export, train
from workloads.artifact import ArtifactError
from workloads.checkpoint import CheckpointError

USER_ERRORS = (data.DataError, CheckpointError, ArtifactError, train.ConfigError)
"""Exceptions that mean the input is wrong, not the code: reported as one line."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workloads", description=__doc__)
    subparsers = p.add_subparsers(dest="command", required=True)
    data.add_parser(subparsers)
    train.add_parser(subparsers)
    export.add_parser(subparsers)
    # The server is optional: the training image may be built without it.
    if importlib.util.find_spec("workloads.serve.cli") is not None:
        from workloads.serve.cli import add_parser as add_serve_parser

        add_serve_parser(subparsers)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as error:
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"error: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
