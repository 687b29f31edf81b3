"""Real photos to training records: reading images (``images``), finding faces and their
landmarks (``faces``, ``blazeface``; dlib's model files: ``dlib_weights``), deterministic splits
(``splits``), TFRecord shards (``tfrecords``, ``records_builder``) and the tf.data input
pipeline (``pipeline``)."""
