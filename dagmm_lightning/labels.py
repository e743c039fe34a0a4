"""Training labels carried by training rows (evaluation rows carry the truth instead: 1 = anomaly), and the
batch every loader gives (a loader of one's own too), as messages state it."""

KNOWN_NORMAL = 0  #: a row known to be normal (every row of the normal-only split)
LABELLED_ANOMALY = 1  #: a row labelled as an anomaly (the mixed-label split)
UNLABELLED = -1  #: a row whose class is unknown (positive-unlabeled split, contaminated training)
BATCH_FORMAT = (
    "a batch is (x, labels, row ids): x (N, F) float rows; labels (N,) integers, in training batches 0 normal, "
    "1 a labelled anomaly (trains the mixed loss, left out of the mixture), -1 unknown, in val/test/predict "
    "batches the truth (1 anomaly, 0 normal, -1 unknown); row ids (N,) each row's own number (the metrics "
    "count each id once)"
)
