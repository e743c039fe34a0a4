"""Training labels carried by training rows (evaluation rows carry the truth instead: 1 = anomaly)."""

KNOWN_NORMAL = 0  #: a row known to be normal (every row of the normal-only split)
LABELLED_ANOMALY = 1  #: a row labelled as an anomaly (the mixed-label split)
UNLABELLED = -1  #: a row whose class is unknown (positive-unlabeled split, contaminated training)
