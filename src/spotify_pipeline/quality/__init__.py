"""Quality: the data-quality checks declared as data (`checks`, run by the transform before publishing) and the
on-demand checks of a published lake and its raw zone, plus run history (`lake_checks`, for `check` and `runs`).
"""
