"""PyTorch workloads that run inside the gpuyard image and on a laptop."""
