"""Built-in suites, registered through the `attnbench.suites` entry point."""
