"""spotify-pipeline: Spotify Web API -> raw zone -> Iceberg tables -> SQL."""

__version__ = "0.1.0"
