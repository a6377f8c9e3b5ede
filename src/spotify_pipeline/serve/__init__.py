"""Serve: `spotify-pipeline serve`, the local read-only dashboard and JSON API (`dashboard`) and GraphQL
(`graphql_api`) over the named reports; the page itself is in `spotify_pipeline/web/`, shared with the HTML
report."""
