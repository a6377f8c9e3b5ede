"""Listening history from a Spotify data download: find the files (`reader`), their formats (`formats`),
check each in one strict pass (`strict`), or, for what that refuses, parse and check it with the private
fields dropped and name the problem (`parse`), write each file's typed raw part (`raw_parts`), write the raw
run and transform (`importer`), and the SQL that turns every play record into `listen_events` and `listens`
(`listens`).

Import `spotify_pipeline.history.importer` for `import_history`; this package imports nothing itself, so
the transform can use `history.listens` without pulling in the importer.
"""
