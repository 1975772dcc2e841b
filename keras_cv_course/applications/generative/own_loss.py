"""The training step shared by generative models whose loss reads only their inputs.

A VAE's target is its input; PixelCNN's likelihood is of its input. Such a
model overrides ``compute_loss(x, y_pred)`` and inherits ``OwnLossModel``,
whose ``train_step`` is written out for TensorFlow: the data are images
alone (no targets), and the loss tracker records the whole batch's loss
under a ``tf.distribute`` strategy rather than one replica's share. On
other backends Keras' own step runs ``compute_loss``; JAX's step takes
``(state, data)``, hence ``*args``.
"""

import keras


class OwnLossModel(keras.Model):
    """A ``keras.Model`` trained on its inputs alone through ``compute_loss``."""

    def train_step(self, *args):
        """One optimisation step: TensorFlow's written out, other backends' inherited."""
        if keras.backend.backend() != "tensorflow":
            return super().train_step(*args)
        import tensorflow as tf  # the TF backend is loaded already

        data = args[-1]
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            outputs = self(inputs, training=True)
            loss = self.compute_loss(x=inputs, y_pred=outputs)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            self._loss_tracker.update_state(loss * replicas)  # undo the per-replica share
            scaled_loss = self.optimizer.scale_loss(loss)  # for mixed precision
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self.get_metrics_result()
