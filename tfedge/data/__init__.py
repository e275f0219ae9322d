"""Datasets: the built-in fashion-on-photos benchmark, user class folders, tf.data input.

Importing this package does not import TensorFlow; :func:`make_dataset` loads it
when called.
"""

from ._backgrounds import SCENE_SETS, available_photos, load_photo, split_photos
from ._benchmark import (BenchmarkConfig, BenchmarkData, benchmark_backgrounds,
                         benchmark_cache_path, generate_benchmark, load_benchmark)
from ._boxes import box_area, clip_boxes, flip_boxes_lr, iou, transform_boxes_for_crop
from ._fashion import FASHION_MNIST_CLASS_NAMES, FashionMNIST, load_fashion_mnist
from ._folders import load_class_folders, load_image_dataset
from ._load import BENCHMARK_NAME, Dataset, load_dataset
from ._tfdata import AugmentConfig, make_dataset
from ._preview import save_preview
from ._source import DataSource, find_voc_boxes
from ._types import FileSplit, ImageSplit

__all__ = [
    "AugmentConfig", "BENCHMARK_NAME", "BenchmarkConfig", "BenchmarkData", "DataSource", "Dataset",
    "FASHION_MNIST_CLASS_NAMES", "FashionMNIST", "FileSplit", "ImageSplit", "SCENE_SETS",
    "available_photos", "find_voc_boxes",
    "benchmark_backgrounds", "benchmark_cache_path", "box_area", "clip_boxes", "flip_boxes_lr",
    "generate_benchmark", "iou", "load_benchmark", "load_class_folders", "load_dataset",
    "load_fashion_mnist", "load_image_dataset", "load_photo", "make_dataset", "save_preview",
    "split_photos", "transform_boxes_for_crop",
]
