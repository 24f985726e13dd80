"""TFESI Desktop: outcome prediction for cervical transforaminal epidural steroid injections.

Research software implementing Wang, Kim & Chang, J Pain Res 2023;16:2587-2594. Not a medical
device. The library logs to a NullHandler; the application decides where messages go.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
