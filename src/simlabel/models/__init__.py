"""Torch modules: frozen image backbones and annotator-model architectures."""
