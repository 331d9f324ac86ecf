"""On-board and edge V2X applications (FCW, ICW, RLVW, ...), sans-I/O, and the driver model."""
