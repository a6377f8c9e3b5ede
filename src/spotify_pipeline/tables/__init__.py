"""Tables: the table contract (`contract`), the Iceberg catalog that stores them (`catalog`: local SQLite or
Glue), snapshot retention (`retention`) and catalog repair for a copied, moved or catalog-less lake (`repair`).

Import the modules themselves; this package imports nothing, so `--help` stays fast and nothing cycles."""
