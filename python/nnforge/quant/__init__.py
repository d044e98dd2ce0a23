"""Int8 quantisation of nnforge models (inference): dynamic (quantize_dynamic), static
post-training (prepare -> calibrate -> convert, with MinMaxObserver or
PercentileObserver) and quantisation-aware training (prepare_qat -> fit -> convert).
save / load write and read a quantised model's checkpoint (pickle-free, validated)."""
from .fake_quantize import FakeQuantize, QATWrapper
from .modules import QuantizedConv2d, QuantizedLinear
from .observers import MinMaxObserver, PercentileObserver
from . import checkpoint
from .transforms import Observed, calibrate, convert, prepare, prepare_qat, quantize_dynamic

__all__ = ["FakeQuantize", "MinMaxObserver", "Observed", "PercentileObserver", "QATWrapper", "QuantizedConv2d",
           "QuantizedLinear", "calibrate", "checkpoint", "convert", "prepare", "prepare_qat", "quantize_dynamic"]
