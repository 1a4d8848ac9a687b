"""The `buildlib` command: buildlib's doit tasks in any repository, with no dodo.py of its own.

`buildlib` builds what is out of date (doit's default task, build_all); `buildlib status`,
`buildlib -n 4 build_all`, `buildlib list` and every other doit command and option work as
with `doit` and the two-line dodo.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain

from .errors import BuildlibError
from .settings import read_toml

DOIT_CONFIG_FILES = ("pyproject.toml", "doit.cfg")   # where doit reads its own [tool.doit] options


def main(argv: list[str] | None = None) -> int:
    # doit reads pyproject.toml before any task loads, and would meet a broken one with a traceback.
    if Path(DOIT_CONFIG_FILES[0]).is_file():
        try:
            read_toml(Path(DOIT_CONFIG_FILES[0]))
        except BuildlibError as error:
            print(f"ERROR: {error}", file=sys.stderr)
            return 3
    from . import tasks   # after the check: importing it opens the state file in this folder
    DoitMain.BIN_NAME = "buildlib"
    return DoitMain(ModuleTaskLoader(tasks), config_filenames=DOIT_CONFIG_FILES).run(
        sys.argv[1:] if argv is None else argv)
