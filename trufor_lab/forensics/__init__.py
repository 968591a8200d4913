"""File forensics: facts a file states about itself (JPEG tables and quality, metadata,
provenance). No network model here.

May import ``common`` only.
"""
