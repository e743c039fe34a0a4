"""Data: loaders, protocol splits, encoding and the LightningDataModule."""

from dagmm_lightning.data.batches import InMemoryBatches
from dagmm_lightning.data.datamodule import AnomalyDataModule
from dagmm_lightning.data.loaders import DATASETS, read_kddcup99_file
from dagmm_lightning.data.splits import Splits, make_splits
from dagmm_lightning.data.tables import RawTable, TablePreprocessor
from dagmm_lightning.errors import DataError
