"""Synthetic training data: masks drawn onto real faces from their landmarks (``masks``), the
overlay folder format, written and read (``overlay``), and the built-in demo set of drawn faces
(``demo``)."""
