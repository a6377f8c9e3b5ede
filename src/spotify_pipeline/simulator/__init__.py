"""A simulated Spotify Web API: real HTTP on 127.0.0.1, response shapes from Spotify's OpenAPI document."""

from .catalog import Catalog
from .faults import Fault, FaultPlan
from .generate import CatalogConfig
from .server import SimulatedSpotify

__all__ = ["Catalog", "CatalogConfig", "Fault", "FaultPlan", "SimulatedSpotify"]
