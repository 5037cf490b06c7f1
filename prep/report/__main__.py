"""``python -m prep.report FOLDER`` (``make report RUN=FOLDER``): rebuild ``report.html`` for a run folder, or the
sweep summary and ``sweep_report.html`` for a multirun folder, from the files they hold."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from prep import contract
from prep.errors import DataError
from prep.report.html import write_run_report
from prep.report.sweep import write_sweep_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prep.report", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run folder (holds summary.json) or a sweep folder (its jobs do)")
    folder = parser.parse_args(argv).folder
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if (folder / contract.SUMMARY).is_file():
        try:
            print(write_run_report(folder))
        except DataError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    if any(folder.glob(f"*/{contract.SUMMARY}")):
        write_sweep_summary(folder)
        print(folder / contract.SWEEP_REPORT)
        return 0
    print(f"{folder}: neither a run folder (no summary.json) nor a sweep folder (no <job>/summary.json)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
