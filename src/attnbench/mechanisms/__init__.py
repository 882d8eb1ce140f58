"""Built-in mechanisms, one file each, registered through the `attnbench.mechanisms` entry point."""
