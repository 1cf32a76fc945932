"""``tinynorm.optim``: PyTorch's optimizers (update rules, defaults, param_groups, state_dict) and
learning-rate schedulers (``tinynorm.optim.lr_scheduler``)."""
from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adadelta", "RMSprop", "Adagrad", "lr_scheduler"]
