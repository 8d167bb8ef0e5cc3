"The training engine, one module per idea (exported from nbs/04*_train*.ipynb); this file only gathers their public names."
from .config import *
from .family import *
from .checkpoint import *
from .loop import *
