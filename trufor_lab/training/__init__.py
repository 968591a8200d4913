"""Training TruFor: synthetic scenes, simulated cameras, forgery data streams, losses,
checkpoints, the loop and the demo recipe.

May import ``lab``, ``inference``, ``forensics``, ``model``, ``viz`` and ``common``.
"""
