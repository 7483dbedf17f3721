"""The gpuyard Pulumi program: validate the stack's spec, then build one Platform."""

import pulumi

from components import spec
from components.platform import Platform

platform_spec = spec.load(pulumi.Config("gpuyard"))
platform = Platform("gpuyard", platform_spec)

pulumi.export("cloud", platform_spec.cloud)
pulumi.export("region", platform_spec.region)
pulumi.export("bucket_url", platform.bucket_url)
pulumi.export("network_id", platform.network_id)
