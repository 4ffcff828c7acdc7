"""Labeling sessions: active learning with people as the oracle, across days (``sslzoo label``).

May import: :mod:`sslzoo._reports` and below; never the CLI.
"""

from sslzoo.labeling.replay import report
from sslzoo.labeling.session import Imported, Round, Session
from sslzoo.labeling.simulated import SimulatedLabeler, simulate

__all__ = ["Session", "Round", "Imported", "SimulatedLabeler", "simulate", "report"]
