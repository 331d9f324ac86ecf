"""Agents: vehicles (OBUs), roadside units and the edge platform as sans-I/O ``step()``s."""
