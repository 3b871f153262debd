"""Data the project makes itself: the synthetic demo study."""
