"""Query: read-only SQL over the tables in a DuckDB sandbox (`engine`), the same SQL through Amazon Athena
(`athena`), and a table written to Parquet / CSV / JSON lines (`export`, in the dialect `engine` prints).
"""
