"""Networks: time embeddings, velocity networks, critics.

Every module here is imported by ``genpo.components`` (discovery), which registers its classes.
"""
