"""auralize: hear neural networks.

The sound engine lives in :mod:`auralize.audio`; it knows nothing about neural
networks.  Feature packages build on it.
"""

from auralize.errors import AuralizeError

__version__ = "0.1.0"

__all__ = ["AuralizeError", "__version__"]
