"""A small U-Net in 2D or 3D: the segmentation model of the demo and of the benchmarks.

The architecture of Ronneberger, Fischer and Brox 2015, "U-Net: Convolutional networks for
biomedical image segmentation" (MICCAI), and in 3D of Çiçek et al. 2016, "3D U-Net: learning
dense volumetric segmentation from sparse annotation" (MICCAI): an encoder of two 3x3 (3x3x3)
convolutions and a 2x max pooling per level, a decoder that upsamples, concatenates the
encoder's feature map of the same level (the skip connection) and convolves twice, and a final
1x1 (1x1x1) convolution with the head's activation. Convolutions are padded ("same"), so the
output has the input's spatial shape; upsampling is nearest-neighbour (``UpSampling``) rather
than a transposed convolution, which keeps the model small and free of checkerboard artefacts.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

__all__ = ["build_unet", "UNET_HEADS"]

#: The head activations :func:`build_unet` takes.
UNET_HEADS = ("sigmoid", "softmax")


def build_unet(
    input_shape: Sequence[int],
    channels_out: int,
    *,
    head: str = "sigmoid",
    filters: Sequence[int] = (8, 16, 32),
    seed: int = 0,
    name: str = "unet",
) -> keras.Model:
    """A functional U-Net for ``(H, W, C)`` (2D) or ``(D, H, W, C)`` (3D) inputs.

    Args:
        input_shape: The input's shape without the batch axis, channels last. Every spatial
            size must be divisible by ``2 ** (len(filters) - 1)`` (one pooling per level below
            the first).
        channels_out: Output channels: one per label (``softmax``) or per independent mask
            (``sigmoid``; one unit for a binary mask).
        head: ``"sigmoid"`` (independent per-pixel probabilities) or ``"softmax"`` (a
            distribution over the channels per pixel; at least 2 channels).
        filters: Filters per level, from the full-resolution level down to the bottleneck.
        seed: Seed of the weight initialisers: the same seed gives the same weights (the
            global random state is left alone).
        name: The model's name.

    Returns:
        A :class:`keras.Model` from ``input_shape`` to ``(*spatial, channels_out)``, its last
        layer a 1x1 convolution named ``"head"`` with the ``head`` activation.

    Raises:
        ValueError: an input that is neither 2D nor 3D, spatial sizes the poolings do not
            divide, an unknown head, a softmax over one channel, or bad filters.

    Example:
        >>> build_unet((32, 32, 1), 1).output_shape
        (None, 32, 32, 1)
        >>> build_unet((16, 16, 16, 1), 3, head="softmax", filters=(4, 8)).output_shape
        (None, 16, 16, 16, 3)
    """
    input_shape = tuple(int(n) for n in input_shape)
    if len(input_shape) not in (3, 4):
        raise ValueError(f"input_shape must be (H, W, C) or (D, H, W, C), got {input_shape}")
    if head not in UNET_HEADS:
        raise ValueError(f"head must be one of {', '.join(UNET_HEADS)}, got {head!r}")
    if isinstance(channels_out, bool) or not isinstance(channels_out, int) or channels_out < 1:
        raise ValueError(f"channels_out must be an integer >= 1, got {channels_out!r}")
    if head == "softmax" and channels_out < 2:
        raise ValueError("a softmax head needs at least 2 output channels (use head='sigmoid' for one mask)")
    filters = tuple(filters)
    if not filters or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in filters):
        raise ValueError(f"filters must be one or more integers >= 1, got {filters!r}")
    factor = 2 ** (len(filters) - 1)
    spatial = input_shape[:-1]
    if any(n < 1 or n % factor for n in spatial):
        raise ValueError(
            f"every spatial size of {input_shape} must be a positive multiple of {factor} "
            f"({len(filters) - 1} poolings for {len(filters)} levels)"
        )
    dims = len(spatial)
    conv = keras.layers.Conv2D if dims == 2 else keras.layers.Conv3D
    pool = keras.layers.MaxPooling2D if dims == 2 else keras.layers.MaxPooling3D
    upsample = keras.layers.UpSampling2D if dims == 2 else keras.layers.UpSampling3D
    count = iter(range(1_000_000))

    def block(x, width: int, prefix: str):
        for k in (1, 2):
            x = conv(
                width,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=keras.initializers.HeNormal(seed=seed * 1000 + next(count)),
                name=f"{prefix}_conv{k}",
            )(x)
        return x

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    skips = []
    for level, width in enumerate(filters[:-1], start=1):
        x = block(x, width, f"down{level}")
        skips.append(x)
        x = pool(2, name=f"down{level}_pool")(x)
    x = block(x, filters[-1], "bottom")
    for level in range(len(filters) - 1, 0, -1):
        x = upsample(2, name=f"up{level}_upsample")(x)
        x = keras.layers.Concatenate(name=f"up{level}_skip")([x, skips[level - 1]])
        x = block(x, filters[level - 1], f"up{level}")
    outputs = conv(
        channels_out,
        1,
        activation=head,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 1000 + next(count)),
        name="head",
    )(x)
    return keras.Model(inputs, outputs, name=name)
