"""skyt1: the Sky-T1 reasoning-model recipe, reproducible and resumable, on a laptop or the cloud."""

__version__ = "0.1.0"
