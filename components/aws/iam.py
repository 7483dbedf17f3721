"""IAM policy documents for the AWS components, built from Outputs."""

from __future__ import annotations

import pulumi
from pulumi_aws.iam import PolicyDocumentVersion, PolicyStatementEffect

ALLOW = PolicyStatementEffect.ALLOW.value
DENY = PolicyStatementEffect.DENY.value


def document(*statements: dict) -> pulumi.Output[str]:
    """A policy document (JSON) of ``statements``, whose values may be Outputs (ARNs, ids)."""
    return pulumi.Output.json_dumps(
        {
            "Version": PolicyDocumentVersion.POLICY_DOCUMENT_VERSION_2012_10_17.value,
            "Statement": list(statements),
        }
    )
