"""MQAR (multi-query associative recall, Zoology): the generator, metric, model and suite."""

from attnbench.suites.mqar.suite import MQARSuite

SUITE = MQARSuite()

__all__ = ["SUITE", "MQARSuite", "multiquery_ar"]


def __getattr__(name: str):
    # The generator imports torch; keep `import attnbench.suites.mqar` cheap for `attnbench list`.
    if name == "multiquery_ar":
        from attnbench.suites.mqar.data import multiquery_ar

        return multiquery_ar
    raise AttributeError(name)
