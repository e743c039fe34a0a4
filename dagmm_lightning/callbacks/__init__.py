"""Callbacks: validation/test anomaly metrics, TensorBoard figures and the predictions CSV."""

from dagmm_lightning.callbacks.figures import AnomalyFigures
from dagmm_lightning.callbacks.metrics import AnomalyMetrics
from dagmm_lightning.callbacks.predictions import PredictionCSVWriter
