"""SSL losses, one module each. Every loss returns its total and its unweighted terms so
each term can be logged."""

from .barlow import barlow_twins_loss
from .distributed import gather_with_grad
from .mutual_information import mutual_information_term
from .nt_xent import nt_xent_loss
from .vicreg import VICRegTerms, vicreg_loss

__all__ = [
    "VICRegTerms",
    "barlow_twins_loss",
    "gather_with_grad",
    "mutual_information_term",
    "nt_xent_loss",
    "vicreg_loss",
]
