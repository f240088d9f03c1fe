"""Meta-architectures (importing registers them)."""

from clouds.modeling.meta_arch.clouds import CLOUDS

__all__ = ["CLOUDS"]
