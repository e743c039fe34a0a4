"""Callbacks: validation/test anomaly metrics and the predictions CSV."""

from dagmm_lightning.callbacks.metrics import AnomalyMetrics
from dagmm_lightning.callbacks.predictions import PredictionCSVWriter

__all__ = ["AnomalyMetrics", "PredictionCSVWriter"]
