"""A faithful local sandbox of the Pyng, Natural and Commenda APIs, for
tests, demos and benchmarks.  See Sandbox."""
from .sandbox import Fault, LoggedRequest, Sandbox

__all__ = ["Sandbox", "Fault", "LoggedRequest"]
