"""Linear classifiers and the two-layer neural network.

The course's first parametric models: ``f(x) = W x + b`` scores each class
with one template per class, and the two-layer network
``f(x) = W2 relu(W1 x + b1) + b2`` learns many templates and mixes them.

References: the linear softmax classifier is multinomial logistic regression
(Cox, "The Regression Analysis of Binary Sequences", JRSS-B 1958, and its
multiclass form); the two-layer network with back-propagation follows
Rumelhart, Hinton, Williams, "Learning representations by back-propagating
errors", Nature 1986.

Parameter counts are analytic: a linear classifier on CIFAR-10 has
3072 x 10 weights and 10 biases (30,730); the two-layer network with 100
hidden units has 3072 x 100 + 100 + 100 x 10 + 10 = 308,310.
"""

import keras

from keras_cv_course.applications.classification import common
from keras_cv_course.applications.registry import register_family
from keras_cv_course.losses import MulticlassHinge

CIFAR_SHAPE = (32, 32, 3)
PAPER_LINEAR = "Cox. The Regression Analysis of Binary Sequences. JRSS-B 1958 (multinomial form)"
PAPER_MLP = (
    "Rumelhart, Hinton, Williams. Learning representations by back-propagating "
    "errors. Nature 1986"
)


def LinearClassifier(
    input_shape=CIFAR_SHAPE,
    classes=10,
    classifier_activation="softmax",
    input_tensor=None,
    name="linear_softmax",
):
    """One template per class: flatten the image, then one Dense layer.

    Args:
        input_shape: image shape ``(height, width, channels)``.
        classes: number of classes.
        classifier_activation: ``"softmax"`` for probabilities, ``None`` for
            raw class scores (as a multiclass SVM uses them).
        input_tensor: optional Keras tensor to build on.
        name: model name.
    """
    image = common.image_input(input_tensor, input_shape)
    x = keras.layers.Flatten(name="flatten")(image)  # (batch, H*W*C)
    x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions",
                           dtype=common.PREDICTION_DTYPE)(x)
    return keras.Model(common.model_inputs(image, input_tensor), x, name=name)


def TwoLayerNet(
    input_shape=CIFAR_SHAPE,
    hidden_units=100,
    classes=10,
    classifier_activation="softmax",
    input_tensor=None,
    name="mlp",
):
    """Flatten, a hidden ReLU layer, then the class scores.

    Args:
        input_shape: image shape ``(height, width, channels)``.
        hidden_units: width of the hidden layer.
        classes: number of classes.
        classifier_activation: activation of the output layer.
        input_tensor: optional Keras tensor to build on.
        name: model name.
    """
    image = common.image_input(input_tensor, input_shape)
    x = keras.layers.Flatten(name="flatten")(image)
    x = keras.layers.Dense(hidden_units, activation="relu", name="hidden")(x)
    x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions",
                           dtype=common.PREDICTION_DTYPE)(x)
    return keras.Model(common.model_inputs(image, input_tensor), x, name=name)


PAPER_SVM = ("Weston, Watkins. Support Vector Machines for Multi-Class Pattern Recognition. "
             "ESANN 1999")
CIFAR_LINEAR_PARAMS = "analytic: 3072x10 weights + 10 biases (CIFAR-10)"

# Family "linear" unless a record names its own (the two-layer network is "mlp").
VARIANTS = (
    dict(name="linear_softmax", builder=LinearClassifier, paper=PAPER_LINEAR,
         reference_params=30_730, params_source=CIFAR_LINEAR_PARAMS,
         tiny_config=dict(input_shape=(8, 8, 1), classes=10),
         description="Linear classifier with softmax loss"),
    dict(name="mlp", builder=TwoLayerNet, family="mlp", paper=PAPER_MLP,
         reference_params=308_310,
         params_source="analytic: 3072x100+100 + 100x10+10 (CIFAR-10, 100 hidden)",
         tiny_config=dict(input_shape=(8, 8, 1), hidden_units=16, classes=10),
         description="Two-layer network, 100 hidden ReLU units"),
    dict(name="linear_svm", builder=LinearClassifier, paper=PAPER_SVM,
         reference_params=30_730, params_source=CIFAR_LINEAR_PARAMS,
         full_config=dict(classifier_activation=None),
         tiny_config=dict(input_shape=(8, 8, 1), classes=10, classifier_activation=None),
         loss=MulticlassHinge,
         description="Linear classifier with multiclass SVM (hinge) loss"),
)

register_family("linear", VARIANTS, task="classification")
