"The workbench, one module per tab (exported from nbs/10*_widgets*.ipynb); this file only gathers their public names."
from .base import *
from .explorer import *
from .train import *
from .flow import *
from .tryout import *
from .export import *
from .compare import *
from .lineage import *
from .app import *
