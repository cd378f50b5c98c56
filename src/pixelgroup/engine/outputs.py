"""Output safety for every command that writes results into a folder: plan the names, then refuse.

Rules (checked before anything is written):

* ``out`` must be a folder (or not exist yet) that can be written, with no file on its path;
* ``out`` must not be a folder that holds one of the inputs (results would sit among, and could
  replace, the images they were computed from), and no output may resolve to an input file;
* two inputs must not give the same output name (``a.png`` and ``a.tif`` both give ``a.tif``):
  the command is refused naming both files (rename one);
* an output that already exists is replaced only with ``overwrite=True`` (``--overwrite``).

Every refusal is an :class:`OutputError` (a ``ValueError``) with one line naming the path and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

_SHOW = 3  # example names in a message


class OutputError(ValueError):
    """An output path that would lose data or cannot be written; the message names it and the fix."""


def _examples(names: Sequence[str]) -> str:
    more = f" and {len(names) - _SHOW} more" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def check_out_folder(out: str | Path, *, flag: str = "--out") -> Path:
    """``out`` is a usable output folder: not a file, no file on its path, writable where it exists."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{flag} {out}: is a file, not a folder; give a folder for the results")
    return _check_parents(out, out, flag)


def _check_parents(out: Path, shown: Path, flag: str) -> Path:
    """The nearest existing folder above ``out`` is a folder we may write in."""
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputError(f"{flag} {shown}: {existing} is a file, not a folder; give a path in a folder")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {shown}: cannot write in {existing} (permission denied); "
                          "choose a folder you can write to")
    return out


def check_out_file(path: str | Path, *, overwrite: bool, flag: str = "--json") -> Path:
    """``path`` can receive one result file: not a folder, its folder usable, replaced only if asked."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; give a file name, e.g. {path / 'results.json'}")
    _check_parents(path.parent, path, flag)
    if path.exists() and not overwrite:
        raise OutputError(f"{flag} {path}: file exists; pass --overwrite to replace it or choose another name")
    return path


def plan_outputs(inputs: Sequence[Path], out: str | Path, names: Callable[[Path], Iterable[str]], *,
                 overwrite: bool, patterns: Callable[[Path], Iterable[str]] | None = None) -> dict[Path, list[Path]]:
    """The output files of every input, after checking the rules of the module doc.

    Args:
        inputs: the input image files.
        out: the output folder.
        names: the output file names of one input (e.g. ``NAME.tif``, ``NAME.json``).
        overwrite: allow replacing outputs that exist.
        patterns: glob patterns of outputs whose number is not known in advance (``NAME_seg*.png``);
            matching files count as existing outputs.

    Returns:
        ``{input: [output paths]}`` in input order.
    """
    out = check_out_folder(out)
    out_real = out.resolve()
    real_inputs = {p.resolve(): p for p in inputs}
    holding = sorted({str(p) for r, p in real_inputs.items() if r.parent == out_real})
    if holding:
        raise OutputError(f"--out {out}: is the folder of the input image(s) {_examples(holding)}; results "
                          "would be mixed with (and could replace) the inputs; choose another --out folder")
    plan: dict[Path, list[Path]] = {}
    owner: dict[str, Path] = {}
    for path in inputs:
        targets = []
        for name in names(path):
            if name in owner and owner[name] != path:
                raise OutputError(f"{owner[name]} and {path} would both be written as {out / name}; "
                                  "rename one of them (outputs are named by the input's file stem)")
            owner[name] = path
            target = out / name
            if target.resolve() in real_inputs:
                raise OutputError(f"{target}: is an input image and would be replaced; choose another --out")
            targets.append(target)
        plan[path] = targets
    if not overwrite and out.is_dir():
        existing = [str(t) for targets in plan.values() for t in targets if t.exists()]
        for path in inputs if patterns else ():
            existing += sorted(str(p) for pattern in patterns(path) for p in out.glob(pattern))
        if existing:
            raise OutputError(f"--out {out}: {len(existing)} result file(s) exist already ({_examples(existing)}); "
                              "pass --overwrite to replace them or choose another --out")
    return plan
