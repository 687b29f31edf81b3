"""A history of generated images for the discriminators (Shrivastava et al. 2017).

CycleGAN updates each discriminator on a mix of current and earlier generator
outputs, which damps the oscillation between the two players. Every image of a
batch, in order, goes through the official CycleGAN ``ImagePool`` rule:

* while the pool holds fewer than ``size`` images, the image is stored and returned;
* once it is full, with probability 1/2 a random stored image is returned and
  replaced by the new one; otherwise the new image is returned.

Design:

* The pool lives in variables (the images and a fill count), so a checkpoint
  holds it and a resumed run continues with exactly the history it had.
* Randomness is stateless, keyed by ``(seed, step)``: there is no generator state
  to save, and a step draws the same numbers whether or not the run was resumed.
* Under ``MirroredStrategy`` each replica all-gathers the global batch and runs
  the same update on it, so every replica holds one identical pool, equal to the
  single-device pool for that global batch; each replica then keeps its own
  slice of the result. The variables are mirrored and written with
  ``only_first_replica`` aggregation (the replicas agree anyway). The cost is one
  all-gather of the generated images per step and a replicated update.
* The per-image rule runs in a ``tf.while_loop`` over a pool *tensor* that is
  written back once: variable writes inside the loop would put a cross-replica
  synchronisation point inside control flow, which ``MirroredStrategy`` rejects.
"""

import keras
import tensorflow as tf


class ImagePool(keras.layers.Layer):
    """``pool(images, step=step)``: the images a discriminator sees instead of ``images``."""

    def __init__(self, size, image_shape, *, seed=0, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.size = size
        self.seed = seed
        self.images = self.add_weight(shape=(size, *image_shape), initializer="zeros", trainable=False,
                                      autocast=False, aggregation="only_first_replica", name="images")
        self.count = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False,
                                     aggregation="only_first_replica", name="count")
        self.built = True

    def draws(self, n, step):
        """Per image: a uniform coin in [0, 1) and a random slot, both keyed by (seed, step)."""
        key = tf.random.experimental.stateless_fold_in(tf.constant([self.seed, 0], tf.int64),
                                                       tf.cast(step, tf.int64))
        coin_key, slot_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
        coins = tf.random.stateless_uniform([n], coin_key)
        slots = tf.random.stateless_uniform([n], slot_key, minval=0, maxval=self.size, dtype=tf.int32)
        return coins, slots

    def query(self, images, step):
        """``(returned, pool, count)`` after passing ``images`` through the pool in order.

        A pure function of the stored state: nothing is written.
        """
        coins, slots = self.draws(tf.shape(images)[0], step)

        def one_image(i, pool, count, returned):
            filling = count < self.size
            swap = tf.logical_and(tf.logical_not(filling), coins[i] < 0.5)
            slot = tf.where(filling, count, slots[i])
            image, stored = images[i], pool[slot]
            returned = tf.tensor_scatter_nd_update(returned, [[i]], [tf.where(swap, stored, image)])
            kept = tf.where(tf.logical_or(filling, swap), image, stored)
            pool = tf.tensor_scatter_nd_update(pool, [[slot]], [kept])
            return i + 1, pool, tf.minimum(count + 1, self.size), returned

        _, pool, count, returned = tf.while_loop(
            lambda i, *_: i < tf.shape(images)[0], one_image,
            (tf.constant(0), tf.convert_to_tensor(self.images), tf.convert_to_tensor(self.count), images))
        return returned, pool, count

    def call(self, images, step):
        images = tf.stop_gradient(tf.cast(images, tf.float32))
        if self.size == 0:
            return images
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        context = tf.distribute.get_replica_context()
        gathered = context.all_gather(images, axis=0) if replicas > 1 else images
        returned, pool, count = self.query(gathered, step)
        self.images.assign(pool)
        self.count.assign(count)
        if replicas == 1:
            return returned
        local = tf.shape(images)[0]
        return returned[context.replica_id_in_sync_group * local:][:local]

