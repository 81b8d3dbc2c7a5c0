"""ganlib: the small, tested library behind the GAN course.

Lessons import modules by name, e.g. ``from ganlib import data, losses, viz``.
"""

__version__ = "0.1.0"
