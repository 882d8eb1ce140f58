"""Triton kernels; each names the reference in `attnbench.mechanisms` it must match."""
