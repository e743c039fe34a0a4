"""Callbacks: validation/test anomaly metrics, TensorBoard figures, the predictions CSV, the checkpoint and
the progress report."""

from dagmm_lightning.callbacks.checkpoint import LastEpochCheckpoint
from dagmm_lightning.callbacks.figures import AnomalyFigures
from dagmm_lightning.callbacks.metrics import AnomalyMetrics
from dagmm_lightning.callbacks.predictions import PredictionCSVWriter
from dagmm_lightning.callbacks.progress import ProgressReport
