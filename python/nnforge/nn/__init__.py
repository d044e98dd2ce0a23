"""nnforge.nn: layers, losses, optimizers and training loops on nnforge kernels."""
from . import checkpoint, init, optim, schedules
from .callbacks import Callback, EarlyStopping, LRScheduler, ModelCheckpoint
from .conv import AvgPool2d, BatchNorm2d, Conv2d, GlobalAvgPool2d, MaxPool2d
from .layers import (BatchNorm1d, Dropout, Embedding, Flatten, GELU, LayerNorm, LeakyReLU, Linear, ReLU,
                     Sigmoid, Softmax, Tanh)
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, Loss, MSELoss
from .metrics import Accuracy, Metric, TopKAccuracy, accuracy, top_k_accuracy
from .module import Module, Parameter, Residual, Sequential
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .schedules import CosineAnnealingLR, ExponentialLR, LinearWarmup, LRSchedule, OneCycleLR, StepLR
from .training import History, Regularizer

__all__ = ["Accuracy", "Adagrad", "Adam", "AdamW", "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm1d",
           "BatchNorm2d", "Callback", "Conv2d", "GlobalAvgPool2d", "MaxPool2d",
           "CosineAnnealingLR", "CrossEntropyLoss", "Dropout", "EarlyStopping", "Embedding", "ExponentialLR",
           "Flatten", "GELU", "History", "L1Loss", "LRSchedule", "LRScheduler", "LayerNorm", "LeakyReLU",
           "Linear", "LinearWarmup", "Loss", "MSELoss", "Metric", "ModelCheckpoint", "Module", "OneCycleLR",
           "Optimizer", "Parameter", "RMSprop", "ReLU", "Regularizer", "Residual", "SGD", "Sequential",
           "Sigmoid", "Softmax", "StepLR", "Tanh", "TopKAccuracy", "accuracy", "checkpoint", "init", "optim",
           "schedules", "top_k_accuracy"]
