"""Networks: time embeddings, velocity networks, critics."""

from genpo.components.networks import critic, time_embedding, velocity_network  # noqa: F401
