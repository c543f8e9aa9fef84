"""PPO loss on any actor's likelihood, and the flow regularisers.

Every module here is imported by ``genpo.components`` (discovery), which registers its classes.
"""
