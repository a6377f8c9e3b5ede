"""Extract: a Spotify Web API client that never loses a page, and the run that lands pages in the raw zone."""

from .auth import Auth, ClientCredentialsAuth
from .client import ApiResponse, SpotifyClient
from .extractor import ExtractOptions, Extractor, ExtractSummary
from .retry import RetryPolicy

__all__ = [
    "ApiResponse",
    "Auth",
    "ClientCredentialsAuth",
    "ExtractOptions",
    "ExtractSummary",
    "Extractor",
    "RetryPolicy",
    "SpotifyClient",
]
