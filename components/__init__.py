"""gpuyard components: the Pulumi side of the package."""
