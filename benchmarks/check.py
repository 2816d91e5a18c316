"""Benchmark: the whole ``itb check`` process on a one-year log against importing pandas.

Runs, alternately and several times, ``itb check`` (no --report) on the one-year sample log
and ``python -c "import pandas"``; each pair run back to back gives one ratio, and the
benchmark reports the median ratio and its range (the machine is noisy, and a pair shares
its moment's load).  Target (issue 18): at most 1.3 in every pair.

The project's modules are byte-compiled first, as an installed package's are: with
``PYTHONDONTWRITEBYTECODE`` set, a module edited since its ``.pyc`` was written would
otherwise be compiled from source on every run, which no user's machine does.

    python benchmarks/check.py [--runs 9] [--log sample_logs/normal_year.itblog]

Last line: ``RESULT check_s=... pandas_import_s=... ratio=... ratio_min=... ratio_max=...``.
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--log", type=Path, default=ROOT / "sample_logs" / "normal_year.itblog")
    args = ap.parse_args()
    itb = shutil.which("itb", path=str(Path(sys.executable).parent)) or "itb"
    check = [itb, "check", str(args.log), "--after", "mri", "--end", "2026-10-31T11:00:00+00:00",
             "--start", "2026-10-31T10:00:00+00:00", "--weight-kg", "28"]
    pandas = [sys.executable, "-c", "import pandas"]
    for package in ("parsers", "clinical", "analysis", "itb_device"):
        compileall.compile_dir(ROOT / package, quiet=2)
    _time(check)
    _time(pandas)  # warm the file cache for both
    c, p, r = [], [], []
    for _ in range(args.runs):
        c.append(_time(check))
        p.append(_time(pandas))
        r.append(c[-1] / p[-1])
    cm, pm, rm = statistics.median(c), statistics.median(p), statistics.median(r)
    print(f"log               {args.log.name}")
    print(f"itb check         median {cm:.3f} s  (min {min(c):.3f}, max {max(c):.3f}, {args.runs} runs)")
    print(f"import pandas     median {pm:.3f} s  (min {min(p):.3f}, max {max(p):.3f})")
    print(f"ratio per pair    median {rm:.2f}  (min {min(r):.2f}, max {max(r):.2f}; target: at most 1.3)")
    print(f"RESULT check_s={cm:.3f} pandas_import_s={pm:.3f} ratio={rm:.2f} "
          f"ratio_min={min(r):.2f} ratio_max={max(r):.2f}")


if __name__ == "__main__":
    main()
