"""The ``phantora`` command. Each subcommand lives in its own module under
``phantora.commands`` and is imported only when invoked, so ``phantora netbench``
never pays for importing torch and nothing pays for ns-3 unless asked.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

# subcommand name -> "module:attribute" of its click.Command
COMMANDS: dict[str, str] = {
    "run": "phantora.commands.run:run",
    "netbench": "phantora.commands.netbench:netbench",
    "profile": "phantora.commands.profile:profile",
    "sweep": "phantora.commands.sweep:sweep",
    "report": "phantora.commands.report:report",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _available(cmd_name):
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


def _available(name: str) -> bool:
    module = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="phantora")
def main() -> None:
    """Phantora: simulate an unmodified PyTorch training job on a GPU cluster you do not have."""
