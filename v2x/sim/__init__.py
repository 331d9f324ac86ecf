"""The world of a run, sans-I/O: ground truth, the channel, the sensors, the referee and the metrics.

``simulation.Simulation`` ties the parts together behind a bytes-in, bytes-and-events-out API; each part
can be used and tested alone: ``channel`` (who hears what, when), ``referee`` (collisions, red-light
violations, stops, speed gates), ``sensors`` (GNSS readings and roadside detections; ``sensing`` is the
roadside sensor model), ``inbound`` (validating and counting what the agents send), ``motion`` (whether a
reported truth moves as a vehicle can), ``safety`` (the surrogate safety measures some expectations ask
for: smallest gap, strongest deceleration, offset from the route), ``names`` (an app's name for the other
party -> the scenario's), ``metrics``, ``events`` (their order) and ``actors`` (the slot layout).
``v2x.net.world`` runs a Simulation on a transport.
"""
