"""phantora: the CLI, the coordinator, scenarios and results of the Phantora simulator."""

__version__ = "0.1.0"
