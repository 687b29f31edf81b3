"""Real photos to training records: reading images (``images``), finding faces and their
landmarks (``faces``, ``blazeface``), deterministic splits (``splits``), TFRecord shards
(``tfrecords``, ``records_builder``) and the tf.data input pipeline (``pipeline``)."""
