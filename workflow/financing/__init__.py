"""The financing domain: one transition table (table.py), the use cases (actions.py), reads (queries.py)."""
