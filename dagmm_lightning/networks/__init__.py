"""Plain torch modules (no Lightning): compression networks, estimation network, the whole DAGMM chain."""

from dagmm_lightning.networks.autoencoder import Autoencoder, Compressed
from dagmm_lightning.networks.dagmm import DAGMMModel, DAGMMOutput, reconstruction_features
from dagmm_lightning.networks.estimation import EstimationNetwork
from dagmm_lightning.networks.layers import ACTIVATIONS, Activation, mlp
from dagmm_lightning.networks.pu import PositiveUnlabeledDAGMMModel
from dagmm_lightning.networks.vae import VariationalAutoencoder
from dagmm_lightning.networks.vqvae import VectorQuantizedAutoencoder, VectorQuantizer, code_usage
