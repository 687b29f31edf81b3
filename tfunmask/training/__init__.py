"""Training: device setup (``hardware``), optimisers (``schedule``), the epoch loop (``trainer``)
and what runs at each step and epoch's end (``callbacks``). Exporting is not here: the ``train``
program calls ``tfunmask.serving`` once training has returned."""
