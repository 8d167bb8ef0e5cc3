"The whole flow, one module per idea (exported from nbs/07*_flow*.ipynb); this file only gathers their public names."
from .candidates import *
from .compare import *
from .stages import *
from .report import *
from .pipeline import *
from .cli import *
