"""Class lists shared by models and datasets, so neither imports the other for them."""
from __future__ import annotations

# PASCAL VOC 2007's 20 classes in the order of the challenge (and of TorchRay's vgg16_voc outputs).
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
