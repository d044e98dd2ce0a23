"""nnforge.nn: layers, losses, optimizers and training loops on nnforge kernels."""
from . import init
from .layers import (BatchNorm1d, Dropout, Embedding, Flatten, GELU, LayerNorm, LeakyReLU, Linear, ReLU,
                     Sigmoid, Softmax, Tanh)
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, Loss, MSELoss
from .module import Module, Parameter, Residual, Sequential

__all__ = ["BCEWithLogitsLoss", "BatchNorm1d", "CrossEntropyLoss", "Dropout", "Embedding", "Flatten", "GELU",
           "L1Loss", "LayerNorm", "LeakyReLU", "Linear", "Loss", "MSELoss", "Module", "Parameter", "ReLU",
           "Residual", "Sequential", "Sigmoid", "Softmax", "Tanh", "init"]
