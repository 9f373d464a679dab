"""The ``phantora`` command. Each subcommand lives in its own module under
``phantora.commands`` and is imported only when invoked, so ``phantora netbench``
never pays for importing torch and nothing pays for ns-3 unless asked.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

import click

# subcommand name -> "module:attribute" of its click.Command
COMMANDS: dict[str, str] = {
    "run": "phantora.commands.run:run",
    "netbench": "phantora.commands.netbench:netbench",
    "profile": "phantora.commands.profile:profile",
    "sweep": "phantora.commands.sweep:sweep",
    "report": "phantora.commands.report:report",
    "conformance": "phantora.commands.conformance:conformance",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use.

    Every usage error is one line on stderr (``phantora netbench: Invalid value for '--ranks': ...``),
    exit code 2, instead of click's usage block.
    """

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "phantora"
            click.echo(f"{where}: {' '.join(e.format_message().split())}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:  # Ctrl-C outside a command's own handling
            click.echo("phantora: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

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
