"""Scoring an unmasking generator: the one-command suite (``suite``) over image metrics
(``image``), Fréchet distances (``frechet``, ``features``), identity (``identity``), face
detection (``detection``), summaries (``scoring``) and the written report (``report``)."""
