"""Listening history from a Spotify data download: find the files (`reader`), their formats (`formats`),
parse and check them with the private fields dropped (`parse`), write a raw run and transform (`importer`),
and the SQL that turns every play record into `listen_events` and `listens` (`listens`).

Import `spotify_pipeline.history.importer` for `import_history`; this package imports nothing itself, so
the transform can use `history.listens` without pulling in the importer.
"""
