"""Kiln: build machine images from Packer-compatible templates."""

__version__ = "0.1.0"
