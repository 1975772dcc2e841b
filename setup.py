"""Install keras_cv_course: `pip install -e .` or `pip install -e ".[test]"`."""

from setuptools import find_packages, setup

# The stack that was verified together (see ../shared/DESIGN.md).
INSTALL_REQUIRES = [
    "tensorflow==2.21.*",
    "keras==3.15.*",
    "tf-keras==2.21.*",
    "tensorflow-model-optimization==0.8.1",
    "tf2onnx==1.17.*",
    "onnx>=1.17",
    "onnxruntime>=1.20",
    "ai-edge-litert==2.3.*",
    "tensorflow-datasets==4.9.*",
    "tensorboard==2.21.*",
    "scikit-learn>=1.5",
    "scipy>=1.11",  # generative.metrics: FID's matrix square root, distances
    "scikit-image>=0.24",
    "matplotlib>=3.8",
    "pycocotools==2.0.*",
    "numpy>=1.26",
]

setup(
    name="keras_cv_course",
    version="0.1.0",
    description="Every model of a deep-learning-for-vision course in Keras 3, "
    "trained with model.fit and exported to SavedModel, TFLite and ONNX.",
    packages=find_packages(include=["keras_cv_course", "keras_cv_course.*"]),
    package_data={"keras_cv_course": ["data/datasheets/*.md"]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "jax[cpu]>=0.4.30",
                 "hypothesis>=6.100", "nltk>=3.8", "pycocoevalcap==1.2"],
        "jax": ["jax[cpu]>=0.4.30"],
        "docs": ["mkdocs==1.6.*", "mkdocs-material==9.8.*", "mkdocstrings[python]==1.0.*",
                 "mkdocstrings-python==2.0.*", "mkdocs-jupyter==0.26.*", "jupytext==1.19.*",
                 "ipykernel>=6.29"],
    },
    entry_points={"console_scripts": ["kcc=keras_cv_course.cli:main"]},
)
