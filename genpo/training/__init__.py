"""Rollout collection, the PPO update loop, checkpoints and run logging.

Depends on the env seam and on component interfaces, never on concrete components or gin.
"""
