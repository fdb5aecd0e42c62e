"""Models written in the project (no torchvision): SqueezeNet 1.0 / 1.1 and ImageNet labels."""

from auralize.models.squeezenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SqueezeNet,
    imagenet_classes,
    load_squeezenet,
    load_state_dict_checked,
    squeezenet1_0,
    squeezenet1_1,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SqueezeNet",
    "imagenet_classes",
    "load_squeezenet",
    "load_state_dict_checked",
    "squeezenet1_0",
    "squeezenet1_1",
]
