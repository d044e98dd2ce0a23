"""nnforge.nn: layers, losses, optimizers and training loops on nnforge kernels."""
from .module import Module, Parameter, Residual, Sequential

__all__ = ["Module", "Parameter", "Residual", "Sequential"]
