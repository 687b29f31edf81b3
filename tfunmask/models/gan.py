"""A base ``keras.Model`` for adversarial training with two optimizers.

It holds what every GAN here shares and gets wrong easily:

* ``compile(g_optimizer=..., d_optimizer=...)``: Keras' own ``self.optimizer``
  stays ``None``; both optimizers are built on their variables up front, which
  is the work-around for keras#23085 (slot variables created inside a
  replicated step fail under ``MirroredStrategy``).
* Global-batch reductions: per-example losses are summed and divided by the
  *global* batch, because gradients are summed across replicas.
* Mixed precision: losses are scaled by ``LossScaleOptimizer`` when one is
  used (float16) and left alone otherwise (float32, bfloat16).
* One ``keras.metrics.Mean`` per loss term, reset every epoch by ``fit``.
* One ``train_step`` for every model: a single forward pass gives per-example
  loss terms; each player's objective is a weighted sum of them, and both
  players are updated from the same pass. That is the official CycleGAN order
  (the generators step against the discriminators as they were, and the
  discriminators then see the fakes of that same pass). The official Pix2Pix
  code differs: it steps the discriminator first and then computes the
  generator's adversarial loss against the *updated* discriminator, a second
  discriminator pass per step. Here Pix2Pix's generator sees the discriminator
  from before this step's update (one step stale), which saves that pass.

* Configuration as constructor arguments (keras-hub's rule): a subclass checks
  its arguments up front, stores them, and ``get_config`` returns exactly them,
  so ``type(model)(**model.get_config())`` rebuilds the same networks. The
  precision is the model's ``dtype`` argument: its sub-networks are built under
  that policy (``policy_scope``) and the global policy is left as it was.

Subclasses define ``LOSS_NAMES`` (and the few of them the progress line shows,
``PROGRESS_NAMES``), ``DATA`` ("paired" or "unpaired"),
``generator_variables``, ``discriminator_variables``, ``loss_weights()``,
``_loss_terms(data, training)`` and ``get_config()``, and may override
``reduction(term)``.
"""

import contextlib

import keras
import tensorflow as tf


def check_size(image_size):
    """Image sizes the networks take: multiples of 16, at least 16."""
    if not isinstance(image_size, int) or image_size < 16 or image_size % 16:
        raise ValueError(f"image_size must be a multiple of 16, at least 16 (got {image_size!r})")


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))} (got {value!r})")


def check_positive(**values):
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be positive (got {value})")


def check_mask_closing(mask_closing, has_map):
    """``export_generator``'s ``mask_closing``: 0, or a radius for a generator whose map composites."""
    if mask_closing < 0:
        raise ValueError(f"mask_closing must be 0 (off) or a positive radius (got {mask_closing})")
    if mask_closing and not has_map:
        raise ValueError("mask_closing needs a composite U-Net generator (Pix2Pix --composite, AttentionGAN "
                         "--backbone=unet): this one has no single mask map that composites its output")


def generator_outputs(outputs):
    """``(image, mask or None)`` from an exported generator's output (``GAN.export_generator``):
    the mask, in [0, 1], is where the generator writes its content; outside it the input passes
    through."""
    if isinstance(outputs, dict):
        return outputs["unmasked"], outputs.get("mask")
    return outputs, None


class GAN(keras.Model):
    """Two-player model: generator(s) against discriminator(s)."""

    LOSS_NAMES: tuple = ()
    PROGRESS_NAMES: tuple = ("g_loss", "d_loss")  # the few the progress line shows

    def __init__(self, loss_names=None, **kwargs):
        super().__init__(**kwargs)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in loss_names or self.LOSS_NAMES}
        self.g_optimizer = None
        self.d_optimizer = None
        # Sub-models are functional and built at construction; marking the
        # wrapper built keeps ``fit`` from calling it on a batch to build it.
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: the networks are built at construction and the optimizers by
        ``compile``. Keras' own version would first average a batch over the replicas with
        ``strategy.reduce``, which fails for a dict batch on several workers (keras#20585)."""

    @contextlib.contextmanager
    def policy_scope(self):
        """Layers created inside take this model's dtype policy (float32 or mixed)."""
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(self.dtype_policy)
        try:
            yield
        finally:
            keras.mixed_precision.set_global_policy(previous)

    @property
    def generator_variables(self):
        raise NotImplementedError

    @property
    def unmasker(self):
        """The network that maps masked faces to unmasked ones: what ``--warm_start`` fills and
        what a run folder offers as a warm start (``training.warm_start``)."""
        raise NotImplementedError

    @property
    def discriminators(self):
        """The discriminator networks this model trains (``--warm_start_discriminators`` fills
        them by name)."""
        raise NotImplementedError

    @property
    def discriminator_variables(self):
        raise NotImplementedError

    def export_generator(self, mask_closing=0):
        """The masked -> unmasked ``keras.Model`` that deployment uses: its output is the image,
        or ``{"unmasked": image, "mask": map}`` where the model knows where it writes
        (``generator_outputs`` reads either). ``mask_closing`` > 0 closes a composite generator's
        map by a square of that radius before compositing; others refuse it
        (``check_mask_closing``)."""
        raise NotImplementedError

    def loss_weights(self):
        """``({term: weight}, {term: weight})``: the generator and discriminator objectives."""
        raise NotImplementedError

    def _loss_terms(self, data, training):
        """Forward pass: ``{term: per-example values}`` for every term ``loss_weights`` names."""
        raise NotImplementedError

    def begin_epoch(self, epoch):
        """Called by the trainer before each epoch; True when the training and validation steps
        change with it (a phase of training), so both must be traced again. Never here."""
        return False

    def reduction(self, term):
        """How ``term`` is reduced over the global batch: "mean" unless a subclass says "sum"."""
        return "mean"

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        """Attaches and builds both optimizers (call inside the strategy scope)."""
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        g_optimizer.build(self.generator_variables)
        d_optimizer.build(self.discriminator_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def track(self, **values):
        """Updates the epoch-mean tracker of each named loss term; returns those trackers' results
        (only the terms this step computes, so a term a phase or a zero weight skips is absent
        from the logs and TensorBoard instead of shown as 0).

        On a cluster the results are shaped [1]: Keras reduces a multi-worker step's outputs with
        ``strategy.reduce(..., axis=0)``, which fails on scalars.
        """
        for name, value in values.items():
            self.trackers[name].update_state(value)
        results = {name: self.trackers[name].result() for name in values}
        strategy = tf.distribute.get_strategy()
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
                strategy.cluster_resolver.cluster_spec().jobs:
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    @staticmethod
    def unpack(data):
        """The batch dict, whether ``fit`` passed it alone or ``train_on_batch`` as ``(x, y, w)``."""
        return keras.utils.unpack_x_y_sample_weight(data)[0]

    @staticmethod
    def reduce(per_example, mode="mean"):
        """This replica's share of a global-batch mean (or sum) of per-example values.

        Gradients from all replicas are summed, so each replica contributes
        ``sum(local) / global_batch`` for a mean and ``sum(local)`` for a sum;
        the result then equals the single-device loss on the global batch.
        """
        per_example = tf.cast(per_example, tf.float32)
        total = tf.reduce_sum(per_example)
        if mode == "sum":
            return total
        if mode != "mean":
            raise ValueError(f"unknown reduction {mode!r}")
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        global_batch = tf.cast(tf.shape(per_example)[0] * replicas, tf.float32)
        return total / global_batch

    @staticmethod
    def step(optimizer, tape, loss, variables):
        """One update of ``variables`` from ``loss``, already ``scale_loss``-ed inside ``tape``."""
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)

    @property
    def random_state(self):
        """Seed-generator states of dropout and other random layers.

        They are not among ``weights``, so a checkpoint of the networks alone
        would restart dropout from its initial seed and a resumed run would
        drift from the uninterrupted one; the trainer checkpoints these too.
        """
        weights = {id(v) for v in self.weights}
        return [v for v in self.variables if id(v) not in weights]

    @staticmethod
    def weighted_sum(values, weights):
        """sum_i w_i * values[i] over the terms that ``weights`` names."""
        return tf.add_n([weight * values[name] for name, weight in weights.items()])

    def _objective(self, terms, weights):
        """sum_i w_i * term_i over ``weights``' terms, as this replica's share of the global batch."""
        return self.weighted_sum({name: self.reduce(terms[name], self.reduction(name)) for name in weights},
                                 weights)

    def _objectives(self, terms):
        """Generator and discriminator objectives (``_objective`` of each of ``loss_weights``)."""
        return tuple(self._objective(terms, weights) for weights in self.loss_weights())

    def _report(self, terms, objectives=None):
        """Per-example means of each term and of each objective, ``{name: weights}`` (default:
        g_loss and d_loss from ``loss_weights``); comparable across batch sizes and replicas,
        whatever the training reduction."""
        mean = {name: tf.reduce_mean(value) for name, value in terms.items()}
        objectives = objectives or dict(zip(("g_loss", "d_loss"), self.loss_weights()))
        return self.track(**{name: self.weighted_sum(mean, weights) for name, weights in objectives.items()},
                          **mean)

    def train_step(self, data):
        with tf.GradientTape(persistent=True) as tape:
            terms = self._loss_terms(data, training=True)
            g_loss, d_loss = self._objectives(terms)
            g_scaled = self.g_optimizer.scale_loss(g_loss)
            d_scaled = self.d_optimizer.scale_loss(d_loss)
        self.step(self.g_optimizer, tape, g_scaled, self.generator_variables)
        self.step(self.d_optimizer, tape, d_scaled, self.discriminator_variables)
        del tape
        return self._report(terms)

    def test_step(self, data):
        return self._report(self._loss_terms(data, training=False))
