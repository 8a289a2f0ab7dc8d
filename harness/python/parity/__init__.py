"""parity: numerical parity harness for Gemma-4 and OLMoE (see README.md).

parity.dump writes HDF5 fixtures from transformers models; the C++ harness reads them.
"""

__version__ = "0.1.0"
