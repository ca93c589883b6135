"""Atomic file writes: a file either has its complete new content or is not there (or is unchanged).

Snakemake (and a person) takes an existing output file as finished. A write that is interrupted (a
killed job, a full disk, a read-only directory) must therefore never leave a partial file under the
final name. The library's writers of labels, dataset files, settings, checkpoints and figures go
through :func:`atomic_write`, which writes a temporary file in the same directory and renames it
over the target with :func:`os.replace` (atomic on POSIX within one file system). Small outputs
written directly by the workflow's scripts rely on Snakemake, which deletes the outputs of a job
that fails.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _default_mode() -> int:
    """Permissions an ordinary ``open(path, "w")`` would give (0o666 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path
        The final file. Its parent directories are created.

    Yields
    ------
    pathlib.Path
        A fresh temporary file name in the same directory (``.<name>.<random>.partial``); write
        the complete content there. If the block raises, the temporary file is removed and
        ``path`` is left as it was (absent, or its previous complete content).

    Examples
    --------
    >>> with atomic_write("out/table.csv") as tmp:  # doctest: +SKIP
    ...     frame.to_csv(tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates 0600 files; results are often shared with a group on clusters
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else _default_mode())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure to ``path`` atomically (format from the suffix) and close it.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or None)
    finally:
        plt.close(fig)
    return path


def write_json(data, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON, atomically (NaN is written as null)."""
    import json
    import math

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    atomic_write_text(path, json.dumps(clean(data), indent=2) + "\n")
