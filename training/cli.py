"""The `infogan` console script: `infogan train ...`, `infogan evaluate ...`, `infogan export ...`."""

from __future__ import annotations

import sys

from training import evaluate, export, train

COMMANDS = {"train": train.main, "evaluate": evaluate.main, "export": export.main}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    usage = f"usage: infogan {{{','.join(COMMANDS)}}} ...  (infogan COMMAND --help for its options)"
    if argv[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(usage, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
