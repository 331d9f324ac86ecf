"""v2x-testbed: a vehicle-road-cloud (V2X) testbed emulator.

Asyncio agents (vehicles, roadside units, the edge/cloud platform) exchange CSAE 53/157-style protobuf
messages over a real MQTT broker; a sans-I/O core (``v2x.core``) decides who hears whom and which road
users are in conflict; scenarios in ``scenarios/`` are replayed and their outcomes checked.
"""

__version__ = "0.1.0"
