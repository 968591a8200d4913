"""The forgery lab: forgeries with known truth, perturbations, metrics, datasets, evaluation
and failure analysis.

May import ``inference``, ``forensics``, ``model``, ``viz`` and ``common``.
"""
