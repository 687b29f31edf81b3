"""Running an exported generator: its file formats behind one interface (``generators``), whole
photos with every face unmasked and blended back (``photos``), folders of photos (``folders``)."""
