"""Data the project makes itself: the synthetic demo study, and the U-Net of the demo segmentation model."""
