"""Score the analysis against the simulator's ground truth.

    python benchmarks/score.py [SAMPLES_DIR]      (default: sample_logs)

Every ``*.itblog`` with a ``*.truth.json`` beside it is analysed.  Prints found / missed /
false findings per kind, each sample's risk match, and a last line
``RESULT samples=N missed_findings=N false_findings=N risk_mismatches=N``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.research.scoring import report, score_directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples_dir", nargs="?", default="sample_logs")
    parser.add_argument("--rules", help="clinical rules TOML overriding the default")
    args = parser.parse_args(argv)
    d = Path(args.samples_dir)
    if not d.is_dir():
        print(f"score: {d} is not a directory", file=sys.stderr)
        return 2
    print(report(score_directory(d, rules=args.rules)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
