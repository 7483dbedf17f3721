"""Settings, artifact lookup and the command line, without starting a server."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import fields

import pytest

from workloads import artifact
from workloads.serve import cli, loading
from workloads.serve.config import ServeConfig, field_docs, resolve


def test_local_model_gets_no_cache_dir(tiny_artifact):
    assert resolve({"model": str(tiny_artifact)}, env={}).cache_dir == ""


def test_artifact_is_found_at_most_one_level_down(tiny_artifact, tmp_path):
    shutil.copytree(tiny_artifact, tmp_path / "one" / "model")
    assert loading.locate(tmp_path / "one") == tmp_path / "one" / "model"
    with pytest.raises(artifact.ArtifactError, match="immediate subdirectories"):
        loading.locate(tmp_path)


def test_cli_help_comes_from_the_config_docstrings(capsys):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    docs = field_docs()
    assert set(docs) == {f.name for f in fields(ServeConfig)}
    for name in ("drain_delay_seconds", "max_queue"):
        assert docs[name][:40] in text, name
    assert "(default: 5.0)" in text
