"""The WIT-independent core: policy checks and socket state machines."""
