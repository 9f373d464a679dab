"""``python -m phantora`` runs the CLI (used where the package is not pip-installed, e.g. on a GPU box)."""

from phantora.cli import main

main()
