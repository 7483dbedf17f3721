"""`gpuyard plan`: every shipped stack plans offline, completely and with its cost."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import catalog
from components.cli import main
from components.project import Project

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Project(ROOT)
STACKS = ["dev-aws", "dev-azure", "dev-gcp", "prod-aws", "prod-azure", "prod-gcp"]
SCHEMES = {"aws": "s3://", "gcp": "gs://", "azure": "az://"}
NAT_TYPES = {
    "aws": "aws:ec2/natGateway:NatGateway",
    "gcp": "gcp:compute/routerNat:RouterNat",
    "azure": "azure-native:network:NatGateway",
}


@pytest.fixture(scope="module")
def plans():
    return {stack: PROJECT.plan(stack) for stack in STACKS}


def test_every_shipped_stack_is_planned():
    assert PROJECT.stacks() == STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_plan_is_complete(plans, stack):
    plan = plans[stack]
    cloud = stack.split("-")[1]
    urns = {r.urn for r in plan.resources}
    stack_urn = f"urn:pulumi:{stack}::gpuyard::pulumi:pulumi:Stack::gpuyard-{stack}"
    assert len(urns) == len(plan.resources), "urns are unique"
    (platform,) = plan.by_type("gpuyard:index:Platform")
    assert platform.parent == stack_urn
    for r in plan.resources:
        assert r.parent in urns | {stack_urn}, f"{r.urn} has unknown parent {r.parent}"
        assert set(r.dependencies) <= urns, f"{r.urn} depends on undeclared resources"
        assert r.type.startswith(("gpuyard:index:", "pulumi:providers:", cloud_prefix(cloud)))
    components = [r for r in plan.resources if r.type.startswith("gpuyard:index:")]
    assert {c.type for c in components} >= {
        "gpuyard:index:Platform",
        f"gpuyard:index:{cloud.capitalize()}Network",
        f"gpuyard:index:{cloud.capitalize()}ObjectStore",
    }
    assert plan.outputs["cloud"] == cloud
    assert plan.outputs["bucket_url"].startswith(SCHEMES[cloud])
    assert any(r.dependencies for r in plan.resources), "ordering is declared with depends_on"


def cloud_prefix(cloud: str) -> str:
    return {"aws": "aws:", "gcp": "gcp:", "azure": "azure-native:"}[cloud]


@pytest.mark.parametrize("stack", STACKS)
def test_cost_rolls_up_nat_gateways(plans, stack):
    plan = plans[stack]
    cloud = stack.split("-")[1]
    nats = plan.by_type(NAT_TYPES[cloud])
    assert nats
    assert [c.urn for c in plan.cost] == [n.urn for n in nats]
    total = plan.to_json()["cost"]
    expected = round(len(nats) * catalog.NAT_GATEWAY_PRICE_PER_HOUR[cloud], 4)
    assert total["min_per_hour"] == total["max_per_hour"] == expected


def test_prod_protects_stateful_resources_and_dev_does_not(plans):
    for cloud in ("aws", "gcp", "azure"):
        assert any(r.protect for r in plans[f"prod-{cloud}"].resources)
        assert not any(r.protect for r in plans[f"dev-{cloud}"].resources)


def test_json_output_is_the_whole_plan(capsys):
    assert main(["plan", "dev-gcp", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["stack"] == "dev-gcp"
    assert body["outputs"]["bucket_url"].startswith("gs://")
    first = body["resources"][0]
    assert set(first) == {
        "urn",
        "type",
        "name",
        "parent",
        "dependencies",
        "inputs",
        "custom",
        "protect",
        "retain_on_delete",
        "provider",
    }
    assert body["cost"]["lines"] and body["cost"]["prices_as_of"] == catalog.PRICES_AS_OF


def test_human_output_shows_tree_counts_and_cost(capsys):
    assert main(["plan", "dev-aws"]) == 0
    out = capsys.readouterr().out
    assert "Stack dev-aws:" in out
    assert "gpuyard:index:Platform  gpuyard" in out
    assert "\n  gpuyard:index:AwsNetwork" in out, "components are indented under the platform"
    assert "Resources by type:" in out and "Estimated cost" in out
    assert "total (min - max scale)" in out


def test_json_is_the_same_under_any_hash_seed():
    runs = [
        subprocess.run(
            [sys.executable, "-m", "components.cli", "plan", "dev-azure", "--json"],
            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]  # fmt: skip
    assert runs[0] and runs[0] == runs[1]


def test_whole_numbers_stay_integers_in_the_json(plans):
    (group,) = plans["dev-aws"].by_type("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["retentionInDays"] == 30
    assert isinstance(group.inputs["retentionInDays"], int)


def test_all_plans_every_stack(capsys):
    assert main(["plan", "--all", "--json"]) == 0
    assert [p["stack"] for p in json.loads(capsys.readouterr().out)] == STACKS


def copy_project(tmp_path: Path, stack_text: str) -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(ROOT / "__main__.py", tmp_path / "__main__.py")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.bad-aws.yaml").write_text(stack_text)
    return tmp_path


def test_bad_stack_file_prints_one_line_and_fails(tmp_path):
    project = copy_project(
        tmp_path,
        "config:\n  gpuyard:cloud: aws\n  gpuyard:region: us-east-1\n"
        "  gpuyard:environment: dev\n  gpuyard:network:\n    cidr: 10.0.0.0/16\n    zones: 9\n",
    )
    done = subprocess.run(
        [sys.executable, "-m", "components.cli", "plan", "bad-aws"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert (
        done.stderr
        == "gpuyard plan: gpuyard:network.zones: got 9; expected between 1 and 6 zones\n"
    )


def test_all_names_the_stack_whose_file_is_bad(tmp_path):
    project = copy_project(
        tmp_path,
        "config:\n  gpuyard:cloud: aws\n  gpuyard:region: us-east-1\n  gpuyard:environment: Prod\n",
    )
    done = subprocess.run(
        [sys.executable, "-m", "components.cli", "plan", "--all"],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith('gpuyard plan: stack bad-aws: gpuyard:environment: got "Prod"')


def test_all_without_stack_files_says_so(tmp_path):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "stacks").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "components.cli", "plan", "--all"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr
        == f"gpuyard plan: no stack files (Pulumi.<stack>.yaml) in {tmp_path / 'stacks'}\n"
    )


def test_unknown_stack_names_the_ones_that_exist(capsys):
    assert main(["plan", "staging-aws"]) == 2
    err = capsys.readouterr().err
    assert "no stack file" in err and "dev-aws, dev-azure" in err


def test_project_file_declares_every_scalar_key_the_way_pulumi_accepts():
    declared = PROJECT.settings["config"]
    scalar = {"cloud", "region", "environment", "project"}
    assert set(declared) == scalar
    for key, declaration in declared.items():
        # Pulumi's project schema: a declaration needs a type, one of these four.
        assert declaration["type"] in {"string", "integer", "boolean", "array"}, key
        assert declaration["description"], key
        assert set(declaration) <= {"type", "items", "description", "secret", "default"}, key
    assert PROJECT.settings["stackConfigDir"] == "stacks"
    assert PROJECT.settings["runtime"]["options"]["virtualenv"] == ".venv"
