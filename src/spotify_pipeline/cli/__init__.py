"""The command line: parse options, call the library, turn library errors into one line and an exit code.

`main` is the entry point (`spotify-pipeline = spotify_pipeline.cli.main:main`); `console` is what people
see (progress bar, log lines, summaries)."""
