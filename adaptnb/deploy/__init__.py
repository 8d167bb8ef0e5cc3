"Deployment, one module per idea (exported from nbs/09*_deploy*.ipynb); this file only gathers their public names."
from .compress import *
from .gate import *
from .card import *
from .artifact import *
from .predict import *
from .causal import *
from .cli import *
