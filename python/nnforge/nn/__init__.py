"""nnforge.nn: layers, losses, optimizers and training loops on nnforge kernels.

Rooms (each imports only those above it): module (Module, Parameter, the layer
contract) and flat (flat parameter buffers); layers / conv / pool / norm / merge / rnn (the
layers); attention, transformer, gpt, lstm_lm (MultiheadAttention, TransformerBlock, GPT); optim,
losses, metrics, callbacks, training (the loop); model (nn.Model, the compile/fit facade);
containers (Sequential, Parallel, Residual); registry, models, cnn_models, gpt_models,
lstm_models (named models for `nnforge train`).
"""
from . import checkpoint, init, optim, schedules
from .callbacks import Callback, EarlyStopping, LRScheduler, ModelCheckpoint
from .attention import KVCache, MultiheadAttention
from .containers import Parallel, Residual, Sequential
from .conv import Conv2d
from .gpt import GPT
from .layers import Dropout, Embedding, Flatten, GELU, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh
from .lstm_lm import LSTMLanguageModel
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, Loss, MSELoss
from .merge import Add, Concat, Fork, Identity, Split
from .metrics import Accuracy, Metric, TopKAccuracy, accuracy, top_k_accuracy
from .model import Model
from .module import Module, Parameter
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, decay_groups
from .pool import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell
from .registry import ModelSpec, build_model, get_model_spec, model_names, register_model
from .sparse import SparseLinear
from .schedules import CosineAnnealingLR, ExponentialLR, LinearWarmup, LRSchedule, OneCycleLR, StepLR
from .training import History, Regularizer
from .transformer import TransformerBlock
# register "mlp", "cnn", "gpt", "lstm"
from . import cnn_models, gpt_models, lstm_models, models  # noqa: E402,F401

__all__ = ["Accuracy", "Adagrad", "Adam", "AdamW", "Add", "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm1d",
           "BatchNorm2d", "Callback", "Concat", "Conv2d", "CosineAnnealingLR", "CrossEntropyLoss", "Dropout",
           "EarlyStopping", "Embedding", "ExponentialLR", "Flatten", "Fork", "GELU", "GPT", "GRU", "GRUCell",
           "GlobalAvgPool2d", "History", "Identity", "KVCache", "L1Loss", "LRSchedule", "LRScheduler", "LSTM",
           "LSTMCell", "LSTMLanguageModel", "LayerNorm", "LeakyReLU", "Linear", "LinearWarmup", "Loss", "MSELoss",
           "MaxPool2d", "Metric", "Model", "ModelCheckpoint", "ModelSpec", "Module", "MultiheadAttention",
           "OneCycleLR", "Optimizer", "Parallel", "Parameter", "RMSprop", "RNN", "RNNCell", "ReLU", "Regularizer",
           "Residual", "SGD", "Sequential", "Sigmoid", "Softmax", "Split", "StepLR", "Tanh", "TopKAccuracy",
           "TransformerBlock", "accuracy", "build_model", "checkpoint", "decay_groups", "get_model_spec", "init",
           "model_names", "optim", "register_model", "schedules", "top_k_accuracy"]
__all__ += ["SparseLinear"]  # nn/sparse.py (inference-only CSR Linear)
