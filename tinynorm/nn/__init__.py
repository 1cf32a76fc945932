"""``tinynorm.nn``: modules with PyTorch's names, defaults and state_dict keys."""
from . import init, utils
from .batch_renorm import BatchRenorm1d, BatchRenorm2d, renorm_schedule
from .batch_norm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .cross_batch_norm import CrossIterationBatchNorm, CrossMiniBatchNorm
from .frn import TLU, FilterResponseNorm2d
from .group_norm import GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm
from .containers import ModuleDict, ModuleList
from .layers import (AdaptiveAvgPool2d, AvgPool2d, Conv2d, CrossEntropyLoss, Dropout, Dropout2d,
                     Flatten, Identity, Linear, MaxPool2d, ReLU, Sequential, Sigmoid, Tanh)
from .loss import BCELoss, BCEWithLogitsLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss
from .lrn import LocalResponseNorm
from .lstm import BNLSTM, LNLSTM, LSTM
from .module import Module, Parameter
from .rms_norm import RMSNorm
from .sync_batch_norm import SyncBatchNorm
from .weight_norm import init_weight_norm_, remove_weight_norm, weight_norm

__all__ = ["init", "Module", "Parameter", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "ReLU", "Tanh", "Sigmoid", "Dropout", "Flatten", "Identity",
           "Sequential", "CrossEntropyLoss", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
           "SyncBatchNorm", "BatchRenorm1d", "BatchRenorm2d", "renorm_schedule",
           "CrossIterationBatchNorm", "CrossMiniBatchNorm", "utils", "weight_norm",
           "remove_weight_norm", "init_weight_norm_", "GroupNorm", "LayerNorm", "InstanceNorm1d",
           "InstanceNorm2d", "InstanceNorm3d", "RMSNorm", "FilterResponseNorm2d", "TLU",
           "LocalResponseNorm", "LSTM", "BNLSTM", "LNLSTM", "Dropout2d", "ModuleList", "ModuleDict",
           "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "BCELoss", "BCEWithLogitsLoss"]
