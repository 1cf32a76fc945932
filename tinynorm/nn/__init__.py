"""``tinynorm.nn``: modules with PyTorch's names, defaults and state_dict keys."""
from . import init
from .batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .layers import (AdaptiveAvgPool2d, AvgPool2d, Conv2d, CrossEntropyLoss, Dropout, Flatten,
                     Identity, Linear, MaxPool2d, ReLU, Sequential, Sigmoid, Tanh)
from .module import Module, Parameter
from .sync_batchnorm import SyncBatchNorm

__all__ = ["init", "Module", "Parameter", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "ReLU", "Tanh", "Sigmoid", "Dropout", "Flatten", "Identity",
           "Sequential", "CrossEntropyLoss", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
           "SyncBatchNorm"]
