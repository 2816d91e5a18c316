"""Checks of output paths made before a command does its work, so a bad path is one line
naming the option, and nothing is computed (or half-written) for nothing."""

from __future__ import annotations

import os
from pathlib import Path

from parsers.atomic import remove_stale_temp_files


def check_output_file(path: Path, option: str, suffixes: tuple[str, ...] = ()) -> None:
    """Refuse (UserError) an output file that cannot be written: its folder is missing or not
    writable, it is a folder, or its suffix is not one of ``suffixes`` (when given).  Removes the
    temporary files an earlier, killed write of the same file left behind."""
    from itb_device.cli import UserError

    if suffixes and path.suffix.lower() not in suffixes:
        raise UserError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise UserError(f"{option} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: the folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path}: the file exists and is not writable")
    remove_stale_temp_files(parent, path.name)  # what a killed earlier run left of this file
