"""Peak memory (``VmHWM``) and seconds of the data module alone on a table read into memory: ``setup("fit")``
(read, encode, split, the scaling), then the scaled float32 rows of the train, val and test splits.

    python benchmarks/datamodule_memory.py --path /tmp/text_heavy/text_heavy_2000000.csv --label-column label

(the table: ``python benchmarks/text_heavy_table.py --rows 2000000 --work /tmp/text_heavy`` writes it first).
Linux only (it reads /proc/self/status). Printed (JSON): the seconds of each part and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path


def peak_mib() -> float:
    """This process's peak resident memory so far (MiB)."""
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", type=Path, required=True, help="a CSV or Parquet table")
    parser.add_argument("--label-column", default=None, help="its 0/1 anomaly column, if any")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed")
    args = parser.parse_args()

    from dagmm_lightning.data import AnomalyDataModule

    imported = peak_mib()
    data = AnomalyDataModule(dataset="table", path=str(args.path), label_column=args.label_column, seed=args.seed)
    start = time.perf_counter()
    data.setup("fit")
    setup = time.perf_counter() - start
    start = time.perf_counter()
    shapes = {split: list(data.arrays(split)[0].shape) for split in ("train", "val", "test")}
    scaled = time.perf_counter() - start
    result = dict(setup_seconds=round(setup, 2), arrays_seconds=round(scaled, 2), shapes=shapes)
    print(json.dumps(result | {"peak_mib": round(peak_mib()), "after_imports_mib": round(imported)}))


if __name__ == "__main__":
    main()
