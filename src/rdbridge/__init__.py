"""rdbridge: the delivery channel from RD-Agent research loops to a trading platform."""

__version__ = "0.1.0"
