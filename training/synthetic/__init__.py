"""The synthetic referring benchmark: aerial-like scenes, instance masks and sentences."""
