"""One module per ``phantora`` subcommand (see ``phantora.cli.COMMANDS``)."""
