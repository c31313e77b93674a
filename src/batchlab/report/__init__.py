"""The study reports: seaborn figures, tables and an HTML page per study, and the index."""
