"""``dagmm benchmark`` with the feature scaling of ``family_scaling_probe.py`` in place of min-max (probe only;
the package has no scaling option): the paper's data sets under a scaling rule the development suite
probed. The first argument is the scaling, the rest go to ``dagmm benchmark``:

    python benchmarks/scaling_benchmark.py standard_floor --configs configs/improved.yaml \
        --data configs/data/thyroid.yaml configs/data/arrhythmia.yaml --seeds 0-4 --jobs 2 --threads 1 \
        --out /tmp/scaling/standard_floor

The scaling is set when this file is imported, so that the runner's worker processes (spawned, which
import it again) use it too.
"""

import sys

from family_scaling_probe import SCALINGS  # this folder's scripts
from script_usage import usage_or_exit

from dagmm_lightning.data.tables import TablePreprocessor

if __name__ == "__main__":
    usage_or_exit(__doc__, sys.argv[1:], 1)
if sys.argv[1] not in SCALINGS:
    sys.exit(f"scaling must be one of {sorted(SCALINGS)}, got {sys.argv[1]!r}")

TablePreprocessor.fit_scaling = SCALINGS[sys.argv[1]]

if __name__ == "__main__":
    from dagmm_lightning.benchmark.runner import main

    main(sys.argv[2:])
