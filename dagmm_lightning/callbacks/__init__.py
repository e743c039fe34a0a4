"""Callbacks: validation/test anomaly metrics, TensorBoard figures, the predictions CSV and the checkpoint."""

from dagmm_lightning.callbacks.checkpoint import LastEpochCheckpoint
from dagmm_lightning.callbacks.figures import AnomalyFigures
from dagmm_lightning.callbacks.metrics import AnomalyMetrics
from dagmm_lightning.callbacks.predictions import PredictionCSVWriter
